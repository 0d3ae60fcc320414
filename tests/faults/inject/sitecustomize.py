"""Imported first by the gitopsd processes the fault suite starts with this folder on
PYTHONPATH, to make a fault happen at an exact point:

- GITOPSD_TEST_FAULT (where no tmpfs can be mounted, see tests/faults/disks.py): while the
  file it names holds an errno, every write under GITOPSD_TEST_FAULT_DIR fails with it, as on
  a full or read-only disk. SQLite writes in C and cannot be reached from here: the suite
  keeps the state store elsewhere in that case;
- GITOPSD_TEST_INOTIFY_ERRNO (see tests/faults/test_inotify_limits.py): the kernel's inotify
  limits reached, which are the user's across the whole machine and so cannot be reached
  for one test without starving the others: every new inotify instance (EMFILE) or watch
  (ENOSPC) fails with that errno, as it does when the limit is reached;
- GITOPSD_TEST_STEP_WRITES (see tests/faults/boundaries.py): a line is appended to the file
  it names each time a step's record is committed to the state store (a step boundary), and
  with GITOPSD_TEST_KILL_AT=N the process SIGKILLs itself right after the Nth.
"""

import builtins
import contextlib
import io
import os
import signal
import threading

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


_STEP_WRITES = os.environ.get("GITOPSD_TEST_STEP_WRITES")
_KILL_AT = int(os.environ.get("GITOPSD_TEST_KILL_AT", "0"))
_inside = threading.local()
_inside.pending = False
_count = [0]
_counting = threading.Lock()


def _boundary() -> None:
    """A step record was committed: count it, and die here if this is the chosen one."""
    with _counting:
        _count[0] += 1
        with _open(_STEP_WRITES, "a") as log:  # type: ignore[arg-type]
            log.write(f"{_count[0]}\n")
        if _count[0] == _KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)


def _after_commit(write):  # type: ignore[no-untyped-def]
    def written(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = write(self, *args, **kwargs)
        if getattr(_inside, "depth", 0):
            _inside.pending = True  # recorded when the transaction commits
        else:
            _boundary()
        return result

    return written


def _counted(transaction):  # type: ignore[no-untyped-def]
    @contextlib.contextmanager
    def counted(self):  # type: ignore[no-untyped-def]
        _inside.depth = getattr(_inside, "depth", 0) + 1
        try:
            with transaction(self):
                yield
        except BaseException:
            _inside.pending = _inside.pending and _inside.depth > 1  # rolled back: not recorded
            raise
        finally:
            _inside.depth -= 1
        if _inside.depth == 0 and getattr(_inside, "pending", False):
            _inside.pending = False
            _boundary()

    return counted


if _STEP_WRITES is not None:
    from gitopsd.adapters.sqlite_store import SqliteStore

    SqliteStore.save_step = _after_commit(SqliteStore.save_step)  # type: ignore[method-assign]
    SqliteStore.save_steps = _after_commit(SqliteStore.save_steps)  # type: ignore[method-assign]
    SqliteStore.transaction = _counted(SqliteStore.transaction)  # type: ignore[method-assign]


_INOTIFY_ERRNO = os.environ.get("GITOPSD_TEST_INOTIFY_ERRNO")


def _failing_with(code: int):  # type: ignore[no-untyped-def]
    def failing(*_args):  # type: ignore[no-untyped-def]
        import ctypes

        ctypes.set_errno(code)
        return -1

    return failing


if _INOTIFY_ERRNO is not None:
    import errno as _errno

    from watchdog.observers import inotify_c

    _code = int(_INOTIFY_ERRNO)
    if _code == _errno.EMFILE:  # the instances limit (fs.inotify.max_user_instances)
        inotify_c.inotify_init = _failing_with(_code)
    else:  # ENOSPC: the watches limit (fs.inotify.max_user_watches)
        inotify_c.inotify_add_watch = _failing_with(_code)
