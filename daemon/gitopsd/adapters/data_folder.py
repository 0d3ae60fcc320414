"""The data folder (`--data-dir`): made on first use, private to gitopsd's user, and told
apart when it cannot be written.

Private: the state database (and its -wal/-shm files), checkouts, reports, logs, the revision
cache, mirrors, drivers' work files and the encryption key all live here, and several hold what
a driver produced or was given. Rather than chmod each file where it is made (and miss the ones
SQLite or git make themselves), the command line sets the process umask to 0077 once, at its
entry, before anything is created. Drivers inherit it: their `GITOPSD_STATE_DIR` is under the
data folder too, and a tool's state (a Terraform state file) deserves the same. A data folder
made by an older gitopsd (0755 under the usual umask) is tightened to 0700 when a command opens
it: with the folder closed, nothing inside can be reached by other users. Only a folder gitopsd
made is tightened (`claim`): `--data-dir .` in a repository or `--data-dir /srv/shared` must not
close a folder others rely on; inside a git work tree such a folder is refused, since the state
database and the key written there would be one `git add -A` away from a commit.

Unwritable: a full disk, a read-only mount or a folder gitopsd may not write used to surface as
a raw `OSError` wherever a checkout, a cached revision or the state database happened to be
written: a traceback for a command, a commit dropped by the daemon. Here such an error becomes
one `DataFolderError` that names the folder and the cause. It is transient
(`errors.TemporaryError`): the daemon keeps the request and tries again with backoff until
space returns, and its readiness (`probe`) says why it is not ready meanwhile.

The folder holds the state database and rendered inputs: a `.gitignore` of `*` is written when
gitopsd creates it, so a data folder inside a repository checkout (the default, `.gitopsd`) is
never committed by a `git add -A`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from gitopsd.errors import DataFolderError, NotADataFolderError

# what a folder that cannot be written answers: full, over quota, read-only, not ours
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
IGNORE_EVERYTHING = "*\n"
PRIVATE_UMASK = 0o077  # new files 0600 (0700 if executable), new folders 0700
PRIVATE_FOLDER = 0o700
# what only gitopsd writes in a data folder, and all it writes there (its own dot files aside)
MARKERS = frozenset({"state.db", "checkouts", "encryption.key"})
OWN_NAMES = MARKERS | {"state.db-wal", "state.db-shm", "state.db-journal", "cache", "mirrors"}
OWN_NAMES |= {"reports", "state", "work", "trust"}


def cannot_write(folder: Path, error: OSError) -> DataFolderError:
    """The one-line error a user sees: `cannot write to the data folder X: <cause>`."""
    cause = error.strerror or str(error)
    return DataFolderError(f"cannot write to the data folder {folder}: {cause}")


def is_unwritable(error: BaseException) -> bool:
    """Whether `error` says a folder cannot be written (rather than a missing file, a bug)."""
    return isinstance(error, OSError) and error.errno in UNWRITABLE


def prepare(folder: Path) -> None:
    """Create `folder` (0700) with its `.gitignore` if missing; DataFolderError if it
    cannot be."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=0o700, parents=True)
        (folder / ".gitignore").write_text(IGNORE_EVERYTHING, encoding="utf-8")
    except FileExistsError:
        return  # another process made it at the same moment
    except OSError as error:
        raise cannot_write(folder, error) from error


def probe(folder: Path) -> None:
    """Write (and remove) one byte in `folder`: DataFolderError if it cannot take it.

    One byte, not an empty file: a full file system still has inodes for empty files. A
    folder removed meanwhile is made again."""
    prepare(folder)
    try:
        handle, name = tempfile.mkstemp(prefix=".probe-", dir=folder)
    except OSError as error:
        raise cannot_write(folder, error) from error
    try:
        os.write(handle, b"\0")
    except OSError as error:
        raise cannot_write(folder, error) from error
    finally:
        os.close(handle)
        with contextlib.suppress(OSError):
            os.unlink(name)


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


def claim(folder: Path) -> None:
    """Check that an existing `folder` may be the data folder, and close it if it is ours.

    gitopsd's own (a marker or its `.gitignore` inside) is tightened. An empty folder inside
    a git work tree (a `mkdir .gitopsd` ahead of time) is adopted: given the `.gitignore`,
    then tightened. Any other folder inside a work tree is refused (NotADataFolderError); one
    outside (a shared folder) is used as it is, never tightened: what gitopsd creates in it
    is private anyway (keep_private)."""
    if not folder.is_dir():
        return  # prepare makes it, private, with its .gitignore
    if not is_ours(folder) and inside_work_tree(folder):
        if any(folder.iterdir()):
            raise NotADataFolderError(
                f"{folder} is inside a git work tree and is not a gitopsd data folder: give"
                " --data-dir a folder of its own (such as .gitopsd), which gitopsd creates"
                " with a .gitignore"
            )
        with contextlib.suppress(OSError):  # read-only: the commands that write say so
            (folder / ".gitignore").write_text(IGNORE_EVERYTHING, encoding="utf-8")
    if is_ours(folder):
        tighten(folder)


def is_ours(folder: Path) -> bool:
    """Whether gitopsd made `folder`: it holds the `.gitignore` prepare writes, or (made by
    a version that wrote none) a marker and nothing but what gitopsd writes. A shared folder
    once given as `--data-dir` holds a state.db beside its owners' files: still not ours."""
    try:
        if (folder / ".gitignore").read_text(encoding="utf-8") == IGNORE_EVERYTHING:
            return True
    except (OSError, UnicodeDecodeError):
        pass
    try:
        names = {entry.name for entry in folder.iterdir() if not entry.name.startswith(".")}
    except OSError:
        return False
    return bool(names & MARKERS) and names <= OWN_NAMES


def inside_work_tree(folder: Path) -> bool:
    """Whether `folder` is in a git work tree (it or a parent holds `.git`)."""
    here = folder.resolve()
    return any((place / ".git").exists() for place in (here, *here.parents))
