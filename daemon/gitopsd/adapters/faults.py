"""Which faults pass by themselves and are worth retrying, and which are final: decided here.

A daemon that drops a commit because the state store was busy for a moment, the disk was full
or the repository could not be read loses work silently; one that retries a broken manifest
for ever hides it. Every place that retries (the SQLite store's writes, the daemon's intake of
requests, its re-reading of the branch head) asks `is_transient` so they agree:

- every `TemporaryError` of the error tree (`gitopsd.errors`), which the adapters raise for
  the store busy (SQLite locked past its busy timeout) or unreachable (PostgreSQL), the data
  folder full, the repository unreadable (a commit seen a moment ago cannot vanish) or GitHub
  unavailable; raw `sqlite3.OperationalError`s that say "locked", "busy" or "full" count too;
- the disk full, a quota reached, the data folder read-only or forbidden (`OSError` ENOSPC,
  EDQUOT, EROFS, EACCES; `data_folder.DataFolderError`; SQLite's "readonly database"), and
  I/O that may pass;
- the network (connection refused or reset, timeouts).

Everything else (a refused request, invalid manifests, a bug) is permanent: reported, not
retried.
"""

from __future__ import annotations

import errno
import sqlite3

from gitopsd.errors import GitopsdError, PermanentError, is_temporary

# a full, read-only or forbidden data folder passes once an operator makes room, remounts it
# or fixes its owner: the daemon keeps its work and tries again rather than dropping it
_PASSING_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EAGAIN, errno.EBUSY, errno.EIO}
)
_PASSING_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR")


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed where `error` failed now."""
    if isinstance(error, PermanentError):
        return False
    if is_temporary(error):
        return True
    if isinstance(error, sqlite3.OperationalError):
        name = getattr(error, "sqlite_errorname", "") or ""
        text = str(error).lower()
        return name.startswith(_PASSING_SQLITE) or any(
            word in text for word in ("locked", "busy", "disk is full", "disk i/o", "readonly")
        )
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, OSError):
        return error.errno in _PASSING_ERRNOS
    return False


def describe(error: BaseException) -> str:
    """One line for a user: a gitopsd error's own message, else the exception and its text."""
    if isinstance(error, GitopsdError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return f"{type(error).__name__}: {error}"
