"""Which faults are worth retrying: one rule for the store, the intake and the head watch."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from gitopsd.adapters import faults
from gitopsd.errors import (
    GitSourceError,
    InvalidRequestError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    UnknownRevisionError,
)


@pytest.mark.parametrize(
    "error",
    [
        StoreBusyError("the state database is locked"),
        StoreUnavailableError("the server does not answer"),
        sqlite3.OperationalError("database is locked"),
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        OSError(errno.EROFS, "Read-only file system"),
        OSError(errno.EACCES, "Permission denied"),
        sqlite3.OperationalError("attempt to write a readonly database"),
        GitSourceError("/repo: git rev-parse failed: not a git repository"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        TimeoutError("timed out"),
    ],
)
def test_faults_that_pass_are_transient(error: BaseException) -> None:
    assert faults.is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        StoreError("bad state URL 'mysql://x'"),
        InvalidRequestError("action must be one of plan, apply, destroy"),
        UnknownRevisionError("/repo: no commit named 'nope'"),
        sqlite3.OperationalError("no such table: requests"),
        OSError(errno.ENOENT, "No such file or directory"),
        ValueError("a bug"),
    ],
)
def test_other_faults_are_permanent(error: BaseException) -> None:
    assert not faults.is_transient(error)


def test_a_fault_is_described_in_one_line_for_a_user() -> None:
    disk = OSError(errno.ENOSPC, "No space left on device", "/data/checkouts/x")
    assert faults.describe(disk) == "No space left on device: /data/checkouts/x"
    assert faults.describe(StoreBusyError("locked")) == "locked"
    assert faults.describe(ValueError("boom")) == "ValueError: boom"
