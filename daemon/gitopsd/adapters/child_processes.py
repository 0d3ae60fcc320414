"""Wait for a driver's process; stop it when its time is up or its run is cancelled.

A call waits for its child to exit (`wait_reading`, which also reads what the child prints;
or a lane's poll, see `driver_lanes`) and wakes only for output or the exit. What can end a
child early (its timeout, a cancelled run) is watched by one thread for all the calls of a runner,
the `Watchdog`, rather than by every call waking up every 50 ms to look: with 16 drivers at
once, those wake-ups and the interpreter-lock hand-overs each one brings cost more CPU than
the drivers did (a drift scan of 1,000 small checks took a third longer).

Stopping is SIGTERM to the child's process group, then SIGKILL after `kill_grace` seconds.
After any exit, whatever is left in the group is SIGKILLed, so a backgrounded child never
outlives its call. No signal can reach a stranger: a child is reaped only in
`release`, after it has left the watch and the rest of its group has been killed, so until
then the exited child still holds its pid and process group id.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gitopsd.engine.ports import CancelSignal

CANCELLED = "cancelled"
TIMED_OUT = "timed out"


@dataclass(eq=False)
class Watched:
    """One running child, as the watchdog sees it."""

    pgid: int
    deadline: float
    cancel: CancelSignal | None
    stopped: str | None = None  # CANCELLED or TIMED_OUT, once the watchdog stopped it
    kill_at: float = math.inf  # when SIGKILL follows the SIGTERM

    @property
    def next_event(self) -> float:
        """When the watchdog has something to do for this child (besides looking at cancel)."""
        return self.deadline if self.stopped is None else self.kill_at


@dataclass(frozen=True)
class Exit:
    """How a child ended: its return code (negative: killed by that signal), and why the
    watchdog stopped it, if it did."""

    returncode: int
    stopped: str | None = None


class Watchdog:
    """Stops the children whose time is up or whose run was cancelled, from one thread."""

    def __init__(self, *, kill_grace: float, tick: float = 0.05) -> None:
        self.kill_grace = kill_grace
        self.tick = tick  # how often cancel signals are looked at while children run
        self._watched: list[Watched] = []
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def watch(
        self, process: subprocess.Popen[bytes], *, timeout: float, cancel: CancelSignal | None
    ) -> Watched:
        """Start watching `process`; `release` it once it has exited (`wait_reading`, or a
        pidfd said so)."""
        watched = Watched(process.pid, time.monotonic() + timeout, cancel)
        with self._changed:
            self._watched.append(watched)
            if len(self._watched) == 1:  # the watchdog sleeps until there is something to watch
                self._start()
                self._changed.notify()
        return watched

    def release(self, process: subprocess.Popen[bytes], watched: Watched) -> Exit:
        """Stop watching `process`, which has exited but is not reaped yet (so its pid is
        still taken); kill what is left of its group, and reap it."""
        self._forget(watched)
        return _reap(process, watched)

    def _forget(self, watched: Watched) -> None:
        with self._changed:
            if watched in self._watched:  # released once, however often asked
                self._watched.remove(watched)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._watch, name="gitopsd-driver-watchdog", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        with self._changed:
            while True:
                if not self._watched:
                    self._changed.wait()
                    continue
                now = time.monotonic()
                for watched in self._watched:
                    self._enforce(watched, now)
                soonest = min(w.next_event for w in self._watched)
                self._changed.wait(max(0.0, min(self.tick, soonest - now)))

    def _enforce(self, watched: Watched, now: float) -> None:
        if watched.stopped is None:
            if watched.cancel is not None and watched.cancel.is_set():
                watched.stopped = CANCELLED
            elif now >= watched.deadline:
                watched.stopped = TIMED_OUT
            else:
                return
            signal_group(watched.pgid, signal.SIGTERM)
            watched.kill_at = now + self.kill_grace
        elif now >= watched.kill_at:
            signal_group(watched.pgid, signal.SIGKILL)  # it ignored SIGTERM
            watched.kill_at = math.inf


def _reap(process: subprocess.Popen[bytes], watched: Watched) -> Exit:
    signal_group(process.pid, signal.SIGKILL)  # the exited leader still holds the group id
    return Exit(process.wait(), watched.stopped)


def signal_group(pgid: int, signum: signal.Signals) -> None:
    # ProcessLookupError: the group is empty already; PermissionError: only strangers are left
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_for_exit(pid: int) -> None:
    """Block until child `pid` has exited, leaving it to be reaped (its pid stays taken)."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def wait_reading(pid: int, output: int, read: Callable[[], bool], *, tick: float = 0.05) -> None:
    """Block until child `pid` has exited (not reaped), calling `read` whenever its `output`
    pipe has data or closes, so the child never stalls on a full pipe; `read` says whether
    the pipe reached end of file.

    The exit wakes the wait through a pidfd (Linux 5.3+); without one it is looked for every
    `tick` seconds. The exit ends the wait even when the pipe is still open: a child the
    driver left behind may hold it.
    """
    pidfd = os.pidfd_open(pid) if pidfds_work() else None
    poller = select.poll()
    poller.register(output, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    try:
        while True:
            ready = [fd for fd, _ in poller.poll(None if pidfd is not None else tick * 1000)]
            if output in ready and read():
                poller.unregister(output)
            exited = pidfd in ready if pidfd is not None else _has_exited(pid)
            if exited:
                return
    finally:
        if pidfd is not None:
            os.close(pidfd)


@functools.cache
def pidfds_work() -> bool:
    """Whether this Python and kernel can watch a process through a pidfd (Linux 5.3+)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def _has_exited(pid: int) -> bool:
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
