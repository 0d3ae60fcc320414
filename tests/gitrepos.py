"""Real git repositories for tests: write files, commit, return the sha."""

from __future__ import annotations

import shutil
import subprocess
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


def commit_example(root: Path) -> Path:
    """The project's example GitOps repo, copied into a new repository at `root` (created)
    and committed on `main`, as a user's clone of it would be."""
    root.mkdir(parents=True)
    for name in EXAMPLE:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "example")
    return root
