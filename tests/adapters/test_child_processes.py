"""One watchdog for many children: each call blocks until its own child ends, and only the
children whose time is up or whose run was cancelled are stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from gitopsd.adapters.child_processes import (
    CANCELLED,
    TIMED_OUT,
    Exit,
    Watchdog,
    wait_for_exit,
)
from tests.adapters.test_command_driver import wait_gone


def wait(
    watchdog: Watchdog,
    process: subprocess.Popen[bytes],
    *,
    timeout: float,
    cancel: threading.Event | None,
) -> Exit:
    """What the command runner does with one call: watch, block until it exits, release."""
    watched = watchdog.watch(process, timeout=timeout, cancel=cancel)
    wait_for_exit(process.pid)
    return watchdog.release(process, watched)


def start(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_children_that_end_in_time_keep_their_exit_codes() -> None:
    watchdog = Watchdog(kill_grace=1.0)
    ended = wait(watchdog, start("raise SystemExit(3)"), timeout=30, cancel=None)
    assert ended == Exit(3, None)


def test_many_at_once_each_gets_its_own_ending() -> None:
    """Twelve children at once: the slow ones time out, the quick ones exit with their codes,
    and none is held up by another."""
    watchdog = Watchdog(kill_grace=1.0, tick=0.02)

    def one(index: int) -> tuple[Exit, float]:
        slow = index % 3 == 0
        code = "import time; time.sleep(30)" if slow else f"raise SystemExit({index})"
        started = time.monotonic()
        ended = wait(watchdog, start(code), timeout=0.5 if slow else 30, cancel=None)
        return ended, time.monotonic() - started

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(12)))
    for index, (ended, took) in enumerate(results):
        if index % 3 == 0:
            assert ended == Exit(-signal.SIGTERM, TIMED_OUT)
            assert 0.5 <= took < 5
        else:
            assert ended == Exit(index, None)
            assert took < 5


def test_a_cancel_stops_the_child_within_a_tick_or_two() -> None:
    watchdog = Watchdog(kill_grace=1.0, tick=0.05)
    cancel = threading.Event()
    process = start("import time; time.sleep(30)")
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    ended = wait(watchdog, process, timeout=30, cancel=cancel)
    assert ended == Exit(-signal.SIGTERM, CANCELLED)
    assert time.monotonic() - started < 2


def test_a_child_ignoring_sigterm_is_killed_after_the_grace() -> None:
    watchdog = Watchdog(kill_grace=0.5, tick=0.02)
    ignoring = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", ignoring], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    started = time.monotonic()
    ended = wait(watchdog, process, timeout=0.2, cancel=None)
    process.stdout.close()
    assert ended == Exit(-signal.SIGKILL, TIMED_OUT)
    assert 0.6 <= time.monotonic() - started < 5  # the timeout, then the whole grace


def test_what_the_child_left_running_in_its_group_is_killed() -> None:
    watchdog = Watchdog(kill_grace=1.0)
    leaves = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print(child.pid, flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", leaves], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    orphan = int(process.stdout.readline())
    assert wait(watchdog, process, timeout=30, cancel=None) == Exit(0, None)
    process.stdout.close()
    assert wait_gone([orphan], within=5)  # killed (a zombie until init reaps it)
