"""Imported first by a gitopsd the fault suite starts where no tmpfs can be mounted (see
tests/faults/disks.py): while the file GITOPSD_TEST_FAULT names holds an errno, every write
under GITOPSD_TEST_FAULT_DIR fails with it, as on a full or read-only disk. SQLite writes in C
and cannot be reached from here: the suite keeps the state store elsewhere in that case."""

import builtins
import io
import os

_SWITCH = os.environ.get("GITOPSD_TEST_FAULT")
_FOLDER = os.path.realpath(os.environ.get("GITOPSD_TEST_FAULT_DIR", "/nonexistent"))
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT


def _check(path: object) -> None:
    if not isinstance(path, str | bytes | os.PathLike) or _SWITCH is None:
        return
    target = os.path.realpath(os.fsdecode(path))
    if target != _FOLDER and not target.startswith(_FOLDER + os.sep):
        return
    try:
        with _open(_SWITCH) as switch:
            code = int(switch.read().strip() or 0)
    except FileNotFoundError:
        return
    if code:
        raise OSError(code, os.strerror(code), os.fsdecode(path))


_os_open, _os_mkdir, _open = os.open, os.mkdir, io.open


def _guarded_os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
    if flags & _WRITES:
        _check(path)
    return _os_open(path, flags, *args, **kwargs)


def _guarded_mkdir(path, *args, **kwargs):  # type: ignore[no-untyped-def]
    _check(path)
    return _os_mkdir(path, *args, **kwargs)


def _guarded_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
    if any(flag in mode for flag in "wax+"):
        _check(file)
    return _open(file, mode, *args, **kwargs)


if _SWITCH is not None:
    os.open, os.mkdir = _guarded_os_open, _guarded_mkdir
    io.open = builtins.open = _guarded_open
