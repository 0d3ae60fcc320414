"""Real git repositories for tests: write files, commit, return the sha."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE = ("gitopsd.yaml", "environments", "components")  # the bundled example GitOps repo
IDENTITY = ["-c", "user.name=Test Author", "-c", "user.email=author@example.com"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit_files(
    repo: Path, files: Mapping[str, str | bytes], *, message: str = "change", replace: bool = False
) -> str:
    """Write `files` into `repo` (created on first use), commit everything, return the sha.

    With `replace`, tracked files not named in `files` are deleted first.
    """
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    if replace:
        git(repo, "rm", "-rq", "--ignore-unmatch", ".")
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def commit_example(root: Path, *, project: Path = PROJECT) -> Path:
    """The project's example GitOps repo, as its HEAD commit has it, committed into a new
    repository at `root` (created) on `main`, as a user's clone of it would be."""
    export_example(root, project=project)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "example")
    return root


def export_example(root: Path, *names: str, project: Path = PROJECT) -> Path:
    """The example's files (or only `names` of it) from the project's HEAD commit, written
    under `root` (created) with their modes. Never from the working tree: a user following
    the README may have edited it, and `make test` must pass whatever they did."""
    with _example_archive(project, names or EXAMPLE) as archive:
        archive.extractall(root, filter="data")
    return root


def example_files(*, project: Path = PROJECT) -> dict[str, bytes]:
    """The example's files at the project's HEAD commit, by path: what gitopsd would load."""
    files = {}
    with _example_archive(project, EXAMPLE) as archive:
        for member in archive.getmembers():
            content = archive.extractfile(member) if member.isfile() else None
            if content is not None:
                files[member.name] = content.read()
    return files


def _example_archive(project: Path, names: tuple[str, ...]) -> tarfile.TarFile:
    found = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD", "--", *names],
        cwd=project,
        check=True,
        capture_output=True,
    )
    return tarfile.open(fileobj=io.BytesIO(found.stdout))
