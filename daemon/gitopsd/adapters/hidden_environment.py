"""gitopsd's own environment, out of its drivers' reach through /proc (Linux).

Withholding variables from a driver's environment (`driver_environment.WITHHELD`) is not
enough on its own: a driver runs as gitopsd's user, and a process may read
`/proc/PID/environ` of (and attach a debugger to) any other process of its user, its parent
gitopsd included, whose environment holds every withheld secret (`GITOPSD_SECRET_*`, the
encryption key, `PGPASSWORD`...). A process that is not "dumpable" is exempt: its /proc
files belong to root and only root may attach to it (nor does it leave a core file full of
secrets). The children it starts are dumpable again once they exec, as usual.
"""

from __future__ import annotations

import ctypes
import sys

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def hide() -> None:
    """Make this process not dumpable, once, at the command line's start; elsewhere than
    Linux, nothing."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
