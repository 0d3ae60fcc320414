"""The C allocator's arenas, capped: a daemon's threads share two heaps, not one each.

glibc gives every thread that allocates an arena (a heap) of its own, up to eight per core,
and each arena keeps what is freed into it for its own later requests: it gives memory back
to the system only from the top of its heap. The daemon has some twenty long-lived threads
(the environments' workers, the API's, git's, the store's, the watcher's), and over a
thousand commits their arenas came to hold megabytes freed by work long done: the resident
memory grew by a fifth while the memory in use stayed flat (benchmarks/README.md, "which
threads allocate"). Python's threads take turns under the GIL, so they gain next to nothing
from heaps of their own; with two, the freed memory is reused by whichever thread asks next.

glibc reads the cap when a thread first needs an arena, so it is set at the command line's
entry, before any thread starts. An operator's own setting (`MALLOC_ARENA_MAX`, or
`arena_max` in `GLIBC_TUNABLES`) wins. A C library without glibc's `mallopt` (macOS) is left
as it is; musl has one arena anyway and ignores the call.
"""

from __future__ import annotations

import ctypes
import os

ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter number for the cap, from glibc's <malloc.h>


def cap_arenas(count: int = ARENAS) -> bool:
    """Ask the C library for at most `count` arenas; whether this call set the cap (not when
    the operator chose one, nor where the library has no such setting)."""
    if _operator_chose():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, count) == 1)


def _operator_chose() -> bool:
    return "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", "")
