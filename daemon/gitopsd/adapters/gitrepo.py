"""The watched git repository: resolve the tracked branch and read a commit's manifests.

Manifests are always read from a commit, never from the working tree, so an uncommitted edit
never reaches an environment. A local path is read in place; a URL is cloned once as a bare
repository under the data folder and fetched on demand. This is the only module that imports
GitPython.

Naming a commit (`head`, `resolve`) and reading files go through the git command itself; a
local repository's GitPython object is made on first use of the rest (logs, authors, trees).
Importing GitPython is slow (benchmarks/README.md), which a `gitopsd drift` or `status`
started from a scheduler would otherwise pay only to turn a branch name into a sha.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from gitopsd.adapters import git_output
from gitopsd.adapters.urls import redacted
from gitopsd.errors import GitSourceError, UnknownRevisionError

if TYPE_CHECKING:
    import git

URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
FETCH_REFSPEC = "+refs/heads/*:refs/heads/*"
CHANGELOG_LIMIT = 200  # commits `changelog` lists at most (`commit_count` says how many there are)
_TREE, _SUBMODULE, _NO_ENTRY = "040000", "160000", "000000"  # git modes, as diff-tree prints them
_LINK = "120000"
KNOWN_COMMITS = 256  # commits `resolve` and `author` remember (the most recent)
T = TypeVar("T")


class Blob(NamedTuple):
    """A file of a commit as git lists it: its object id, its size in bytes, and whether it
    is a symbolic link (its content is then the path it points to)."""

    sha: str
    size: int
    link: bool = False


class Listing(NamedTuple):
    """A commit's files (path -> blob) and folders (path -> git tree id; "" is the root)."""

    files: dict[str, Blob]
    folders: dict[str, str]


class Commit(NamedTuple):
    """One commit of a changelog, as git logs it (`date` is the author date, ISO 8601)."""

    sha: str
    short: str
    author: str
    email: str
    date: str
    subject: str

    @property
    def line(self) -> str:
        """`<short sha> <subject> (<author>)`: one line of `gitopsd diff`'s changelog."""
        return f"{self.short} {self.subject} ({self.author})"


class GitSource:
    """One repository and the branch gitopsd tracks in it."""

    def __init__(
        self,
        git_dir: Path,
        *,
        branch: str,
        location: str,
        repo: git.Repo | None = None,
    ) -> None:
        self.git_dir = git_dir
        self.branch = branch
        self.location = location
        self.shown = redacted(location)  # how errors and logs name it: without a password
        self._repo = repo
        # GitPython's object is made once, whichever thread asks first
        self._lock = threading.RLock()
        self._commits: dict[str, str] = {}  # full shas already seen to name a commit
        self._authors: dict[str, tuple[str, str]] = {}  # a commit's author never changes
        self._last_listing: tuple[str, Listing] | None = None  # the commit and its listing

    @classmethod
    def open(cls, location: str, *, branch: str | None, data_dir: Path) -> GitSource:
        """Open a local repository in place, or clone/refresh a URL under `data_dir/mirrors`."""
        if is_url(location):
            repo = _mirror(location, data_dir)
            return cls(
                Path(repo.git_dir),
                branch=branch or _checked_out_branch(Path(repo.git_dir)),
                location=location,
                repo=repo,
            )
        git_dir = _local(location)
        return cls(git_dir, branch=branch or _checked_out_branch(git_dir), location=location)

    def __enter__(self) -> GitSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def repo(self) -> git.Repo:
        """GitPython's view of the repository, opened (and GitPython imported) on first use."""
        with self._lock:
            if self._repo is None:
                import git  # GitPython: heavy, see the module docstring

                self._repo = git.Repo(self.git_dir)
            return self._repo

    def close(self) -> None:
        """Stop the git helper processes GitPython keeps open for this repository."""
        with self._lock:
            if self._repo is not None:
                self._repo.close()

    @functools.cached_property
    def common_dir(self) -> Path:
        """The folder holding the refs every worktree shares (the `.git` folder, for most)."""
        return (self.git_dir / self._git_output("rev-parse", "--git-common-dir").strip()).resolve()

    @property
    def is_mirror(self) -> bool:
        """Whether this is a bare mirror of a URL (fetched), not a local repository (watched)."""
        return is_url(self.location)

    def commits_between(self, old: str, new: str) -> list[str]:
        """The commits after `old` up to but excluding `new`, oldest first (what a jump of
        the branch from `old` to `new` skipped); empty when `old` is not an ancestor."""
        done = self._git("rev-list", "--reverse", "--first-parent", f"{old}..{new}", "--")
        if done.returncode != 0:
            return []
        last = self.resolve(new)
        return [sha for sha in done.stdout.split() if sha != last]

    def changelog(self, old: str | None, new: str) -> list[str]:
        """`<short sha> <subject> (<author>)` of each commit after `old` up to `new`, newest
        first (all of `new`'s history when `old` is None), at most CHANGELOG_LIMIT."""
        return [commit.line for commit in self.commits(old, new)]

    def commits(self, old: str | None, new: str) -> list[Commit]:
        """The commits `changelog` lists, each with its sha, subject, author and date."""
        span = f"{old}..{new}" if old else new
        fields = "%x00".join(("%H", "%h", "%an", "%ae", "%aI", "%s"))
        listing = self._git_output(
            "log", f"--max-count={CHANGELOG_LIMIT}", f"--format={fields}", span, "--"
        )
        return [Commit(*line.split("\0", 5)) for line in listing.splitlines() if line]

    def commit_count(self, old: str | None, new: str) -> int:
        """How many commits `changelog(old, new)` would list without its limit."""
        span = f"{old}..{new}" if old else new
        return int(self._git_output("rev-list", "--count", span, "--").strip() or 0)

    def describe(self, revisions: Sequence[str] = (), *, recent: int = 0) -> list[dict[str, str]]:
        """`{"revision", "subject", "author", "date"}` of the branch's `recent` newest commits
        (newest first), then of each of `revisions` not among them (for the dashboard, which
        shows what each environment runs and the revision timeline). Unknown ones are left out."""
        fields = "--format=%H%x00%s%x00%an%x00%cI"
        found: list[dict[str, str]] = []
        if recent > 0:
            listing = self._git_output("log", f"--max-count={recent}", fields, self.branch, "--")
            found = _commit_lines(listing)
        seen = {commit["revision"] for commit in found}
        wanted = [r for r in dict.fromkeys(revisions) if r and r not in seen]
        if wanted:
            done = self._git("log", "--no-walk=unsorted", fields, *wanted, "--")
            found += _commit_lines(done.stdout) if done.returncode == 0 else []
        return found

    def author(self, revision: str) -> tuple[str, str]:
        """The (name, email) of the commit's author: who may not approve it (forbid_author)."""
        sha = self.resolve(revision)
        known = self._authors.get(sha)
        if known is not None:  # status and admission ask for it at every look
            return known
        done = self._git("show", "-s", "--format=%an%x00%ae", sha)
        if done.returncode != 0:
            raise self._no_commit(revision)
        name, _, email = done.stdout.rstrip("\n").partition("\0")
        self._remember(self._authors, sha, (name, email))
        return name, email

    def head(self) -> str:
        """The full sha the tracked branch points at now."""
        return self.resolve(self.branch)

    def resolve(self, revision: str) -> str:
        """The full sha of a commit named by sha, prefix, branch or tag. A name with a
        control character (a NUL, which no process argument can carry) names no commit: git
        allows none in a ref name."""
        known = self._commits.get(revision)
        if known is not None:
            return known
        if any(ord(character) < 32 or character == "\x7f" for character in revision):
            raise self._no_commit(revision)
        done = self._git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
        )
        sha = done.stdout.strip()
        if done.returncode != 0 or not FULL_SHA.match(sha):
            raise self._no_commit(revision)
        # A full sha names the same commit for ever (a branch moves): the commit a branch
        # resolved to is known when it is asked for next, as `drift` does with the head.
        # The last KNOWN_COMMITS only: a daemon sees a new head with every commit.
        self._remember(self._commits, sha, sha)
        return sha

    def _no_commit(self, revision: str) -> UnknownRevisionError:
        """The one wording of an unknown revision, for the CLI and the API alike: what is
        missing first, then where (a path in front, `.: no commit named`, read as noise)."""
        return UnknownRevisionError(
            f"no commit named {revision!r} in the repository {self.shown!r}"
        )

    def _remember(self, table: dict[str, T], sha: str, value: T) -> None:
        """Keep what is known of commit `sha` for good; the last KNOWN_COMMITS commits only."""
        with self._lock:
            table[sha] = value
            if len(table) > KNOWN_COMMITS:
                del table[next(iter(table))]

    def is_on_branch(self, revision: str) -> bool:
        """Whether `revision` is a commit of the tracked branch (SPEC 3.3: only those run)."""
        sha = self.resolve(revision)
        done = self._git("merge-base", "--is-ancestor", sha, self.branch)
        return done.returncode == 0

    def fetch(self) -> None:
        """Bring a mirrored repository up to date with its remote (no-op for a local one)."""
        if not self.is_mirror:
            return
        done = self._git("fetch", "--prune", "origin", FETCH_REFSPEC)
        if done.returncode != 0:
            raise GitSourceError(f"cannot fetch {self.shown}: {done.stderr.strip()}")

    def read_files(self, revision: str, *, wanted: Callable[[str], bool]) -> dict[str, bytes]:
        """The content of every file of commit `revision` whose path `wanted` accepts."""
        return self.read_blobs(self.list_files(revision, wanted=wanted))

    def list_files(self, revision: str, *, wanted: Callable[[str], bool]) -> dict[str, Blob]:
        """The files of commit `revision` whose path `wanted` accepts, with their sizes: what
        a caller needs to decide what to read before reading any of it."""
        files = self.listing(revision).files
        return {path: blob for path, blob in files.items() if wanted(path)}

    def listing(self, revision: str) -> Listing:
        """Every file of commit `revision` with its size, and every folder's tree id: made
        from the last listing and what changed since (`git diff-tree`), as a new head
        changes a few files of thousands; from one `ls-tree` of the whole commit the first
        time, or when git can no longer compare the two (benchmarks/README.md)."""
        sha = self.resolve(revision)
        last = self._last_listing
        if last is None or last[0] != sha:
            last = (sha, self._listing_from(last, sha))
            self._last_listing = last
        files, folders = last[1]
        return Listing(dict(files), dict(folders))  # the caller's: the next one starts from it

    def _listing_from(self, last: tuple[str, Listing] | None, sha: str) -> Listing:
        if last is not None:
            with contextlib.suppress(GitSourceError):
                return self._listing_since(*last, sha)
        return self._whole_listing(sha)

    def _whole_listing(self, sha: str) -> Listing:
        """From one `ls-tree`: listing the files and then the folders read every tree twice."""
        folders = {"": self._git_output("rev-parse", f"{sha}^{{tree}}").strip()}
        files: dict[str, Blob] = {}
        for record in self._records("ls-tree", "-r", "-t", "-l", "-z", "--full-tree", sha):
            meta, _, path = record.partition("\t")
            mode, kind, object_id, size = meta.split()
            if kind == "blob":
                if not size.isdigit():  # `BAD`: git does not have the file's content
                    raise GitSourceError(f"{self.shown}: git has no object {object_id} ({path})")
                files[path] = Blob(object_id, int(size), mode == _LINK)
            elif kind == "tree":
                folders[path] = object_id
        return Listing(files, folders)

    def _listing_since(self, base_sha: str, base: Listing, sha: str) -> Listing:
        """`base` (the listing of commit `base_sha`) turned into commit `sha`'s by the
        entries `diff-tree` reports changed, the sizes of the files written found by
        `cat-file --batch-check`. A path whose type changed (a file become a folder) is
        reported twice, removed as one and added as the other, in either order."""
        files, folders = dict(base.files), dict(base.folders)
        written: dict[str, str] = {}  # path -> blob id, for the files whose size is wanted
        links: set[str] = set()
        fields = list(self._records("diff-tree", "-r", "-t", "-z", "--no-renames", base_sha, sha))
        for meta, path in zip(fields[::2], fields[1::2], strict=True):
            old_mode, new_mode, _old_id, new_id, _status = meta.lstrip(":").split()
            if new_mode == _NO_ENTRY:  # removed as what it was: it may be added as the other
                (folders if old_mode == _TREE else files).pop(path, None)
                continue
            files.pop(path, None)
            folders.pop(path, None)
            if new_mode == _TREE:
                folders[path] = new_id
            elif new_mode != _SUBMODULE:
                written[path] = new_id
                if new_mode == _LINK:
                    links.add(path)
        root, *sizes = self._object_sizes([f"{sha}^{{tree}}", *written.values()])
        folders[""] = root[0]
        files.update(
            (path, Blob(object_id, size, path in links))
            for (path, object_id), (_, size) in zip(written.items(), sizes, strict=True)
        )
        return Listing(files, folders)

    def _object_sizes(self, names: list[str]) -> list[tuple[str, int]]:
        """The id and size of each named object, from one `cat-file --batch-check`;
        GitSourceError when git lacks one."""
        done = _run(
            ["git", "cat-file", "--batch-check=%(objectname) %(objectsize)"],
            cwd=self.git_dir,
            input="".join(f"{name}\n" for name in names),
            capture_output=True,
            text=True,
        )
        answers = [line.split() for line in done.stdout.splitlines()]
        if done.returncode != 0 or len(answers) != len(names):
            raise GitSourceError(f"{self.shown}: git cat-file failed: {done.stderr.strip()}")
        for answer in answers:  # `<name> missing`: git does not have that object
            if len(answer) != 2 or not answer[1].isdigit():
                raise GitSourceError(f"{self.shown}: git cat-file: {' '.join(answer)}")
        return [(object_id, int(size)) for object_id, size in answers]

    def read_blobs(self, files: Mapping[str, Blob]) -> dict[str, bytes]:
        """The content of files listed by `list_files`, by path. Nothing is kept: loading
        finds the manifests it has already by their blob ids, without reading them."""
        wanted = sorted({blob.sha for blob in files.values()})
        contents = dict(zip(wanted, self._read_blobs(wanted), strict=True))
        return {path: contents[blob.sha] for path, blob in files.items()}

    def folder_trees(self, revision: str) -> dict[str, str]:
        """The git tree id of every folder of a commit: a folder's content digest, for free."""
        return self.listing(revision).folders

    def changes(self, base: str, revision: str) -> tuple[list[str], list[str]]:
        """What turns commit `base`'s files into `revision`'s: (paths to write, paths to
        remove); a path whose content, mode or type changed is in both."""
        base, revision = self.resolve(base), self.resolve(revision)
        fields = list(self._records("diff", "--name-status", "--no-renames", "-z", base, revision))
        write, remove = [], []
        for status, path in zip(fields[::2], fields[1::2], strict=True):
            if status != "A":
                remove.append(path)
            if status != "D":
                write.append(path)
        return write, remove

    def export(self, revision: str, target: Path, *, paths: Sequence[str] | None = None) -> None:
        """Write the files of commit `revision` into the empty folder `target` (or only
        `paths` of them, into a folder that holds the rest already).

        git writes the files itself (modes and symlinks as committed), with a private index
        file, so the user's repository and index are never touched: all of them by
        `read-tree` and `checkout-index`; a few by `restore`, which reads only their
        folders' trees where `read-tree` reads every tree of the commit. Paths are given
        literally (`--literal-pathspecs`): a file may be named like a pattern.
        """
        sha = self.resolve(revision)
        target = target.resolve()  # git runs in the git dir: a relative path would land there
        index = target.with_name(target.name + ".index")
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        work_tree = f"--work-tree={target}"
        try:
            if paths is None:
                self._export_command(["git", "read-tree", sha], revision, env)
                command = ["git", work_tree, "checkout-index", "--force", "--all"]
                self._export_command(command, revision, env)
            else:
                command = ["git", "--literal-pathspecs", work_tree, "restore", f"--source={sha}"]
                command += ["--worktree", "--pathspec-from-file=-", "--pathspec-file-nul"]
                listed = "".join(f"{path}\0" for path in paths).encode(errors="surrogateescape")
                self._export_command(command, revision, env, listed)
        finally:
            index.unlink(missing_ok=True)

    def _export_command(
        self, command: list[str], revision: str, env: dict[str, str], listed: bytes = b""
    ) -> None:
        done = _run(command, cwd=self.git_dir, env=env, input=listed, capture_output=True)
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip()
            raise GitSourceError(f"cannot export {revision}: {reason}")

    def _read_blobs(self, shas: list[str]) -> list[bytes]:
        """Read blobs through one `git cat-file --batch`, one at a time (`git_output`)."""
        if not shas:
            return []
        failure = f"{self.shown}: git cat-file failed"
        return git_output.blobs(
            ["git", "cat-file", "--batch"], shas, cwd=self.git_dir, failure=failure
        )

    def _records(self, *args: str) -> Iterator[str]:
        """The NUL-separated records of `git ARGS` (with `-z`), as git prints them."""
        failure = f"{self.shown}: git {args[0]} failed"
        return git_output.records(["git", *args], cwd=self.git_dir, failure=failure)

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `git ARGS` in the git folder; the result, whatever the exit code."""
        return _run_git(self.git_dir, *args)

    def _git_output(self, *args: str) -> str:
        """The output of `git ARGS`, or GitSourceError with git's own message."""
        done = self._git(*args)
        if done.returncode != 0:
            raise GitSourceError(f"{self.shown}: git {args[0]} failed: {done.stderr.strip()}")
        return done.stdout


def _commit_lines(listing: str) -> list[dict[str, str]]:
    keys = ("revision", "subject", "author", "date")
    lines = [line for line in listing.splitlines() if line]
    return [dict(zip(keys, line.split("\0"), strict=False)) for line in lines]


def is_url(location: str) -> bool:
    return bool(URL.match(location))


def _local(location: str) -> Path:
    """The git folder of the repository at (or above) `location`."""
    path = Path(location).expanduser()
    if not path.exists():
        raise GitSourceError(f"{location}: no such directory")
    done = _run_git(path, "rev-parse", "--absolute-git-dir")
    if done.returncode != 0:
        raise GitSourceError(f"{location}: not a git repository")
    return Path(done.stdout.strip())


def _mirror(url: str, data_dir: Path) -> git.Repo:
    import git  # GitPython: heavy, see the module docstring

    target = data_dir / "mirrors" / _mirror_name(url)
    try:
        if target.exists():
            repo = git.Repo(target)
            repo.git.fetch("--prune", "origin", FETCH_REFSPEC)
            return repo
        target.parent.mkdir(parents=True, exist_ok=True)
        return git.Repo.clone_from(url, target, bare=True)
    except git.GitCommandError as error:
        raise GitSourceError(f"cannot clone or fetch {redacted(url)}: {_stderr(error)}") from None


def _mirror_name(url: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9.-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
    return f"{stem}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def _checked_out_branch(git_dir: Path) -> str:
    """The checked-out branch; a detached HEAD (as in CI checkouts) tracks HEAD itself."""
    done = _run_git(git_dir, "symbolic-ref", "--quiet", "--short", "HEAD")
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "HEAD"


def _run_git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = _run(
        ["git", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",  # text for people (subjects, names); paths come through `_records`
    )
    return done


def _run(command: list[str], *, cwd: Path, **options: Any) -> subprocess.CompletedProcess[Any]:
    """`command` in `cwd`; a git folder that went away (moved, unmounted) or a git that
    cannot start is a GitSourceError, which callers treat as the repository being briefly
    unreadable (retried), never as a bug."""
    try:
        return subprocess.run(command, cwd=cwd, check=False, **options)
    except OSError as error:
        raise GitSourceError(f"{cwd}: cannot run git there: {error.strerror or error}") from None


def _stderr(error: git.GitCommandError) -> str:
    return str(error.stderr).strip().removeprefix("stderr: ").strip(" '") or str(error)
