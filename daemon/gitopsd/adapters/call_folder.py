"""Where a driver call's inputs and outputs files live: in memory, where the machine has a
private place for it, else in the data folder.

The files hold the rendered inputs, secrets among them, and last one call. On a memory file
system (tmpfs) they never reach a disk, and making and removing one costs about 30 µs against
100-130 µs on ext4, which a drift scan of 1,000 components pays 1,000 times. In this order:

1. `$RUNTIME_DIRECTORY`: the folder systemd makes for a unit with `RuntimeDirectory=`;
2. `$XDG_RUNTIME_DIR/gitopsd`: the user's own runtime folder (a login session's);
3. `/dev/shm/gitopsd-<uid>`: the shared memory file system every Linux has, containers
   included. Anyone can create a folder there: one that is not a real folder of ours that
   only we can write to is not used (another user could swap a call's inputs file);
4. the fallback, `.gitopsd/work/`.

Several processes of a user can share the folder: each call's file names carry the process id
(`command_driver`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (shared: _private_folder checks what is there)


def call_files_folder(
    fallback: Path,
    *,
    environ: Mapping[str, str] = os.environ,
    shared_memory: Path = SHARED_MEMORY,
) -> Path:
    """The first usable folder of the module docstring's list."""
    for candidate in _candidates(environ, shared_memory):
        if _private_folder(candidate):
            return candidate
    return fallback


def _candidates(environ: Mapping[str, str], shared_memory: Path) -> list[Path]:
    found = []
    if environ.get("RUNTIME_DIRECTORY"):  # several, colon-separated, if the unit named several
        found.append(Path(environ["RUNTIME_DIRECTORY"].split(":")[0]))
    if environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(environ["XDG_RUNTIME_DIR"]) / "gitopsd")
    if hasattr(os, "getuid"):
        found.append(shared_memory / f"gitopsd-{os.getuid()}")
    return [path for path in found if path.is_absolute()]


def _private_folder(path: Path) -> bool:
    """Whether `path` is a folder of this user's that no one else can write to, making it
    (mode 0700) if missing."""
    if not path.parent.is_dir():
        return False
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        found = os.lstat(path)  # lstat: a symbolic link planted there is not followed
    except OSError:
        return False
    return (
        stat.S_ISDIR(found.st_mode)
        and found.st_uid == os.getuid()
        and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        and os.access(path, os.W_OK | os.X_OK)
    )
