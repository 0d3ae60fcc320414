"""The data folder is private to gitopsd's user: files 0600, folders 0700, whatever the umask.

The state database (and its -wal/-shm files), checkouts, reports, logs, the revision cache,
mirrors, drivers' work files and the encryption key all live under the data folder, and several
hold what a driver produced or was given. Rather than chmod each file where it is made (and
miss the ones SQLite or git make themselves), the command line sets the process umask to 0077
once, at its entry, before anything is created. Drivers inherit it: their `GITOPSD_STATE_DIR`
is under the data folder too, and a tool's state (a Terraform state file) deserves the same.

A data folder made by an older gitopsd (0755 under the usual umask) is tightened to 0700 when
a command opens it: with the folder closed, nothing inside can be reached by other users.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077  # new files 0600 (0700 if executable), new folders 0700
PRIVATE_FOLDER = 0o700


def keep_private() -> int:
    """Make everything this process creates from now on private to its user; the old umask."""
    return os.umask(PRIVATE_UMASK)


def tighten(folder: Path) -> None:
    """Close an existing data folder to other users (one a previous version left open).

    A folder that is not there yet is left alone: it is created private (keep_private). One
    gitopsd cannot change (owned by another user, as a mounted volume's root may be, or on a
    read-only file system) is left as it is: its owner decides who may read it, and the
    commands that need to write there report the fault themselves."""
    try:
        mode = folder.stat().st_mode
        if stat.S_ISDIR(mode) and stat.S_IMODE(mode) & 0o077:
            folder.chmod(stat.S_IMODE(mode) & ~0o077 | stat.S_IRWXU)
    except OSError:
        return
