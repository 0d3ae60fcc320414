"""Drivers die with gitopsd: a small helper process ends them when gitopsd itself is killed.

Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`) would do this per driver, but Python
can only set it in a `preexec_fn`, which turns each spawn's `vfork` into a `fork` of the whole
interpreter, several times the per-step budget (benchmarks/README.md). Wrapping each driver
in `setpriv --pdeathsig` costs an extra exec per step. And either would reach only the
driver itself, not the children in its group (a shell's `terraform`).

So each gitopsd process that starts drivers starts one helper, the first time it needs it: a
bare Python (`-I -S`, in its own session so a terminal's Ctrl-C does not reach it) that reads,
on a pipe only gitopsd holds, which driver groups run ("+ pid start", "- pid": each leader's
start time comes with it). When gitopsd dies, however it dies, the pipe reaches end of file:
the helper sends SIGTERM to each group still running whose leader has the noted start time (a
reused pid is left alone), SIGKILL after the grace, and exits. When gitopsd exits normally the
list is empty and the helper exits at once. The helper reads what the pipe holds every
`READ_EVERY` seconds rather than as it comes: a write to a pipe that a process waits to read
wakes that process, which on a small VM cost gitopsd more than the rest of starting a driver
(benchmarks/README.md), so a line costs one `write`. Between two reads it waits for the pipe's
hang-up alone, which no write wakes: drivers are ended within milliseconds of gitopsd's death,
not up to `READ_EVERY` seconds later. If the helper cannot be started, or is killed, drivers
run unguarded, as before; the store's records of them (`runtime.runs.orphan_drivers`) still
let whoever takes the environment over end them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref

MARK = "gitopsd-reaper"  # in the helper's command line, to tell it from a driver
READ_EVERY = 0.25  # seconds between the helper's looks at its pipe

_HELPER = r"""
import os, select, signal, sys, time
grace, read_every = float(sys.argv[2]), float(sys.argv[3])

def start_of(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as file:
            text = file.read()
    except OSError:
        return None
    return text[text.rfind(b")") + 2:].split()[19]

groups = {}
os.set_blocking(0, False)

def read_all(unread=b""):  # the lines written so far; None at the end of file
    while True:
        try:
            chunk = os.read(0, 65536)
        except BlockingIOError:
            return unread
        if not chunk:
            return None
        *lines, unread = (unread + chunk).split(b"\n")
        for line in lines:
            sign, pid, *start = line.split()
            if sign == b"+":
                groups[int(pid)] = start[0] if start else None
            else:
                groups.pop(int(pid), None)

# Asked for no event, the poll wakes only when gitopsd's end of the pipe closes (a hang-up is
# always reported), not for each line written; it drains the pipe every `read_every` seconds.
hang_up = select.poll()
hang_up.register(0, 0)
unread = b""
while (unread := read_all(unread)) is not None:
    hang_up.poll(read_every * 1000)

def signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
        return True
    except OSError:
        return False

def ours(pid, start):  # a leader gone may have left children in its group
    return start is None or start_of(pid) in (None, start)

running = [pid for pid, start in groups.items() if ours(pid, start) and signal_group(pid, 0)]
for pid in running:
    signal_group(pid, signal.SIGTERM)
deadline = time.monotonic() + grace
while running and time.monotonic() < deadline:
    time.sleep(0.05)
    running = [pid for pid in running if signal_group(pid, 0)]
for pid in running:
    signal_group(pid, signal.SIGKILL)
"""


class Reaper:
    """The helper of this process: told of each driver group as it starts and ends."""

    def __init__(self, *, kill_grace: float) -> None:
        self.kill_grace = kill_grace
        self._lock = threading.Lock()
        self._pipe = -1  # the write end, once the helper runs; -2 if it could not be started
        self._closer: weakref.finalize[[int], Reaper] | None = None

    def watch(self, pid: int, started: int | None) -> None:
        """Driver group `pid` runs; its leader started at `started` (`process_groups`), None
        if that could not be read."""
        self._send(f"+ {pid} {'' if started is None else started}\n".encode())

    def forget(self, pid: int) -> None:
        """Driver group `pid` has ended (its leader reaped, its group killed)."""
        self._send(f"- {pid}\n".encode())

    def _send(self, line: bytes) -> None:
        pipe = self._pipe if self._pipe >= 0 else self._start()
        if pipe < 0:
            return
        try:
            os.write(pipe, line)  # shorter than PIPE_BUF: written whole, whatever the threads
        except OSError:  # the helper was killed: drivers run unguarded from now on
            self._pipe = -2

    def _start(self) -> int:
        with self._lock:
            if self._pipe == -1:
                self._pipe = _start_helper(self.kill_grace)
                if self._pipe >= 0:  # closed with the runner (or at exit): the helper ends
                    self._closer = weakref.finalize(self, _close, self._pipe)
            return self._pipe


def _start_helper(kill_grace: float) -> int:
    """Start the helper; the write end of its stdin (-2 if it could not be started).

    `posix_spawn`, not `Popen`: nothing waits for the helper, which outlives its runner when
    the runner is dropped (it exits once it has read the end of file); finished helpers are
    reaped when the next one starts."""
    _reap_finished()
    reading, writing = os.pipe()  # both close on exec: drivers never hold them
    argv = [sys.executable, "-I", "-S", "-c", _HELPER, MARK, str(kill_grace), str(READ_EVERY)]
    try:
        with open(os.devnull, "wb") as null:
            pid = os.posix_spawn(
                sys.executable,
                argv,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, reading, 0),
                    (os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                    (os.POSIX_SPAWN_DUP2, null.fileno(), 2),
                ],
                setsid=True,
            )
    except OSError:
        os.close(writing)
        return -2
    finally:
        os.close(reading)
    _HELPERS.append(pid)
    return writing


_HELPERS: list[int] = []  # helpers started by this process, until reaped


def _reap_finished() -> None:
    for pid in list(_HELPERS):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _HELPERS.remove(pid)


def _close(pipe: int) -> None:
    with contextlib.suppress(OSError):
        os.close(pipe)
