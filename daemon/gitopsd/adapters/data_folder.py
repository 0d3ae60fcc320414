"""The data folder (`--data-dir`): made on first use, and told apart when it cannot be written.

A full disk, a read-only mount or a folder gitopsd may not write used to surface as a raw
`OSError` wherever a checkout, a cached revision or the state database happened to be
written: a traceback for a command, a commit dropped by the daemon. Here such an error
becomes one `DataFolderError` that names the folder and the cause. It is transient
(`faults.TransientError`): the daemon keeps the request and tries again with backoff until
space returns, and its readiness (`probe`) says why it is not ready meanwhile.

The folder holds the state database and rendered inputs: a `.gitignore` of `*` is written
when gitopsd creates it, so a data folder inside a repository checkout (the default,
`.gitopsd`) is never committed by a `git add -A`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from gitopsd.adapters.faults import TransientError

# what a folder that cannot be written answers: full, over quota, read-only, not ours
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
IGNORE_EVERYTHING = "*\n"


class DataFolderError(TransientError):
    """The data folder cannot be written (disk full, read-only, permission): may pass."""


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
