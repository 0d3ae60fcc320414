"""Real git repositories for tests: write files, commit, return the sha."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

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
