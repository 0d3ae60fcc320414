"""The watched git repository: resolve the tracked branch and read a commit's manifests.

Manifests are always read from a commit, never from the working tree, so an uncommitted edit
never reaches an environment. A local path is read in place; a URL is cloned once as a bare
repository under the data folder and fetched on demand. This is the only module that imports
GitPython.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import git

from gitopsd.errors import GitopsdError

URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
FETCH_REFSPEC = "+refs/heads/*:refs/heads/*"


class GitSourceError(GitopsdError):
    """The repository, branch or revision cannot be used; the message says which and why."""


class GitSource:
    """One repository and the branch gitopsd tracks in it."""

    def __init__(self, repo: git.Repo, *, branch: str, location: str) -> None:
        self.repo = repo
        self.branch = branch
        self.location = location
        # GitPython talks to long-lived `git cat-file` processes that two threads must not
        # share at once; every use of `repo` goes through this lock.
        self._lock = threading.RLock()

    @classmethod
    def open(cls, location: str, *, branch: str | None, data_dir: Path) -> GitSource:
        """Open a local repository in place, or clone/refresh a URL under `data_dir/mirrors`."""
        repo = _mirror(location, data_dir) if is_url(location) else _local(location)
        return cls(repo, branch=branch or _default_branch(repo), location=location)

    def __enter__(self) -> GitSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the git helper processes GitPython keeps open for this repository."""
        with self._lock:
            self.repo.close()

    @property
    def is_mirror(self) -> bool:
        """Whether this is a bare mirror of a URL (fetched), not a local repository (watched)."""
        return is_url(self.location)

    def commits_between(self, old: str, new: str) -> list[str]:
        """The commits after `old` up to but excluding `new`, oldest first (what a jump of
        the branch from `old` to `new` skipped); empty when `old` is not an ancestor."""
        try:
            with self._lock:
                listing = self.repo.git.rev_list("--reverse", "--first-parent", f"{old}..{new}")
        except git.GitCommandError:
            return []
        return [sha for sha in listing.split() if sha != self.resolve(new)]

    def changelog(self, old: str | None, new: str) -> list[str]:
        """`<short sha> <subject> (<author>)` of each commit after `old` up to `new`, newest
        first (all of `new`'s history when `old` is None), at most 200."""
        span = f"{old}..{new}" if old else new
        with self._lock:
            listing = self.repo.git.log("--max-count=200", "--format=%h %s (%an)", span)
        return [line for line in listing.splitlines() if line]

    def author(self, revision: str) -> tuple[str, str]:
        """The (name, email) of the commit's author: who may not approve it (forbid_author)."""
        try:
            commit = self._commit(revision)
        except (git.BadName, ValueError, git.GitCommandError):
            raise GitSourceError(f"{self.location}: no commit named {revision!r}") from None
        return str(commit.author.name or ""), str(commit.author.email or "")

    def head(self) -> str:
        """The full sha the tracked branch points at now."""
        return self.resolve(self.branch)

    def resolve(self, revision: str) -> str:
        """The full sha of a commit named by sha, prefix, branch or tag."""
        try:
            return str(self._commit(revision).hexsha)
        except (git.BadName, ValueError, git.GitCommandError):
            raise GitSourceError(f"{self.location}: no commit named {revision!r}") from None

    def _commit(self, revision: str) -> git.Commit:
        """GitPython answers from long-lived `git cat-file` helpers; one that died (a Ctrl-C
        reaches the whole process group) is restarted once instead of failing forever."""
        with self._lock:
            try:
                return self.repo.commit(revision)
            except (BrokenPipeError, ConnectionResetError, ValueError):
                self.repo.close()  # GitPython starts fresh helpers on the next call
                return self.repo.commit(revision)

    def fetch(self) -> None:
        """Bring a mirrored repository up to date with its remote (no-op for a local one)."""
        if not self.repo.bare or not self.repo.remotes:
            return
        try:
            with self._lock:
                self.repo.git.fetch("--prune", "origin", FETCH_REFSPEC)
        except git.GitCommandError as error:
            raise GitSourceError(f"cannot fetch {self.location}: {_stderr(error)}") from None

    def read_files(self, revision: str, *, wanted: Callable[[str], bool]) -> dict[str, bytes]:
        """The content of every file of commit `revision` whose path `wanted` accepts."""
        entries = self._list_blobs(revision)
        chosen = [(sha, path) for sha, path in entries if wanted(path)]
        return dict(
            zip([path for _, path in chosen], self._read_blobs([s for s, _ in chosen]), strict=True)
        )

    def folder_trees(self, revision: str) -> dict[str, str]:
        """The git tree id of every folder of a commit: a folder's content digest, for free."""
        sha = self.resolve(revision)
        with self._lock:
            listing = self.repo.git.ls_tree("-r", "-d", "-z", "--full-tree", sha)
            trees = {"": str(self._commit(sha).tree.hexsha)}
        for record in listing.split("\0"):
            if record:
                meta, _, path = record.partition("\t")
                trees[path] = meta.split()[2]
        return trees

    def export(self, revision: str, target: Path) -> None:
        """Write the files of commit `revision` into the empty folder `target`.

        git's own checkout-index writes the files (fast, modes and symlinks as committed),
        from a private index file, so the user's repository and index are never touched.
        """
        sha = self.resolve(revision)
        target = target.resolve()  # git runs in the git dir: a relative path would land there
        index = target.with_name(target.name + ".index")
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        commands = (
            ["git", "read-tree", sha],
            ["git", f"--work-tree={target}", "checkout-index", "--all", "--force"],
        )
        try:
            for command in commands:
                done = subprocess.run(
                    command, cwd=self.repo.git_dir, env=env, capture_output=True, check=False
                )
                if done.returncode != 0:
                    reason = done.stderr.decode(errors="replace").strip()
                    raise GitSourceError(f"cannot export {revision}: {reason}")
        finally:
            index.unlink(missing_ok=True)

    def _list_blobs(self, revision: str) -> list[tuple[str, str]]:
        sha = self.resolve(revision)
        with self._lock:
            listing = self.repo.git.ls_tree("-r", "-z", "--full-tree", sha)
        entries = []
        for record in listing.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            _mode, kind, blob = meta.split()
            if kind == "blob":
                entries.append((blob, path))
        return entries

    def _read_blobs(self, shas: list[str]) -> list[bytes]:
        """Read blobs through one `git cat-file --batch`, all requests sent at once."""
        if not shas:
            return []
        request = "".join(f"{sha}\n" for sha in shas).encode()
        done = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.repo.git_dir,
            input=request,
            capture_output=True,
            check=True,
        )
        return _split_batch(done.stdout, len(shas))


def is_url(location: str) -> bool:
    return bool(URL.match(location))


def _local(location: str) -> git.Repo:
    path = Path(location).expanduser()
    if not path.exists():
        raise GitSourceError(f"{location}: no such directory")
    try:
        return git.Repo(path, search_parent_directories=True)
    except git.InvalidGitRepositoryError:
        raise GitSourceError(f"{location}: not a git repository") from None


def _mirror(url: str, data_dir: Path) -> git.Repo:
    target = data_dir / "mirrors" / _mirror_name(url)
    try:
        if target.exists():
            repo = git.Repo(target)
            repo.git.fetch("--prune", "origin", FETCH_REFSPEC)
            return repo
        target.parent.mkdir(parents=True, exist_ok=True)
        return git.Repo.clone_from(url, target, bare=True)
    except git.GitCommandError as error:
        raise GitSourceError(f"cannot clone or fetch {url}: {_stderr(error)}") from None


def _mirror_name(url: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9.-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
    return f"{stem}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def _default_branch(repo: git.Repo) -> str:
    """The checked-out branch; a detached HEAD (as in CI checkouts) tracks HEAD itself."""
    if repo.head.is_detached:
        return "HEAD"
    try:
        return str(repo.active_branch.name)
    except TypeError:
        return "HEAD"


def _split_batch(output: bytes, count: int) -> list[bytes]:
    blobs = []
    offset = 0
    for _ in range(count):
        header_end = output.index(b"\n", offset)
        header = output[offset:header_end].split()
        if len(header) != 3:
            raise GitSourceError(f"unexpected git cat-file output: {header!r}")
        size = int(header[2])
        start = header_end + 1
        blobs.append(output[start : start + size])
        offset = start + size + 1
    return blobs


def _stderr(error: git.GitCommandError) -> str:
    return str(error.stderr).strip().removeprefix("stderr: ").strip(" '") or str(error)
