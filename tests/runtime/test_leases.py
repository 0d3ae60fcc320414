"""The environment's lease: who counts as dead, and renewals that meet faults."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.errors import StoreBusyError
from gitopsd.runtime.runs import leases


def holder_of(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:test"


def state_of(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()[0]


def test_a_killed_holder_not_yet_reaped_is_dead_and_a_live_one_is_not() -> None:
    """A gitopsd killed by `kill -9` under a parent that does not reap it stays a zombie:
    its lease is taken over at once, not after the lease's 30 s."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while state_of(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state_of(child.pid) == "Z"
        assert leases.is_dead(holder_of(child.pid))
    finally:
        child.wait()
    assert leases.is_dead(holder_of(child.pid))
    assert not leases.is_dead(holder_of(os.getpid()))
    assert not leases.is_dead(f"elsewhere:{child.pid}:test")  # another host's: not ours to say


class LockedAtTimes(MemoryStore):
    """A store whose lease writes fail while `locked` is set, as SQLite's do when another
    process holds the database past the busy timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.locked = threading.Event()

    def acquire_lease(self, *args: Any, **kwargs: Any) -> bool:
        if self.locked.is_set():
            raise StoreBusyError("the state database cannot be written: database is locked")
        return super().acquire_lease(*args, **kwargs)


def test_renewals_that_fail_until_the_lease_would_expire_lose_it() -> None:
    """The run hears of it (its cancel flag) instead of going on while another command may
    take the environment: a renewer that died of the first fault let two runs overlap."""
    store, clock, lost = LockedAtTimes(), SystemClock(), threading.Event()
    with leases.held(store, "dev", holder="me:1:a", clock=clock, lost=lost, ttl=1.0):
        store.locked.set()
        assert lost.wait(5)
        store.locked.clear()


class StalledAtTimes(MemoryStore):
    """A store whose lease writes neither fail nor answer while `stalled` is set, until
    `answer` is: as SQLite's, whose BEGIN waits out the busy timeout and then the store's
    write patience (minutes) while another process holds the database."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled, self.answer = threading.Event(), threading.Event()

    def acquire_lease(self, *args: Any, **kwargs: Any) -> bool:
        if self.stalled.is_set():
            self.answer.wait(60)
        return super().acquire_lease(*args, **kwargs)


def failing() -> tuple[MemoryStore, Callable[[], None], Callable[[], None]]:
    store = LockedAtTimes()
    return store, store.locked.set, store.locked.clear


def stalling() -> tuple[MemoryStore, Callable[[], None], Callable[[], None]]:
    store = StalledAtTimes()
    return store, store.stalled.set, store.answer.set


@pytest.mark.parametrize("fault", [failing, stalling])
def test_a_renewal_fault_that_ends_in_time_keeps_the_lease(
    fault: Callable[[], tuple[MemoryStore, Callable[[], None], Callable[[], None]]],
) -> None:
    """A renewal that fails (tried again every tenth of the TTL) or waits, until the fault
    ends before the lease is given up."""
    (store, begin, end), clock, lost = fault(), SystemClock(), threading.Event()
    with leases.held(store, "dev", holder="me:1:a", clock=clock, lost=lost, ttl=2.0):
        time.sleep(0.8)  # one renewal (every third of the TTL, 0.67 s) went through
        begin()
        time.sleep(0.8)  # the renewal at 1.33 s fails or waits...
        end()  # ...until 1.6 s, before 2.0 s, when a lease renewed at 0.67 s is given up
        time.sleep(2.5)  # past the TTL since the fault: renewed meanwhile, or expired
        assert not lost.is_set()
        assert store.lease_holder("dev", now=clock.now()) == "me:1:a"


def test_a_renewal_that_never_answers_loses_the_lease_when_it_would_expire() -> None:
    """The lease expires in the store while the renewal waits, and another process may take
    the environment and start the same component's driver: the run hears of it by then, not
    when the renewal answers, and a renewal answering later does not undo it."""
    store, clock, lost = StalledAtTimes(), SystemClock(), threading.Event()
    ttl = 0.3
    with leases.held(store, "dev", holder="me:1:a", clock=clock, lost=lost, ttl=ttl):
        store.stalled.set()
        try:
            assert lost.wait(ttl + 2.0)  # at most the TTL after the last renewal
        finally:
            store.answer.set()  # the renewal answers, late
        time.sleep(2 * ttl)
        assert lost.is_set()
        assert store.lease_holder("dev", now=clock.now()) is None  # and is renewed no more


def test_a_state_database_locked_by_another_process_loses_the_lease_when_it_would_expire(
    tmp_path: Path,
) -> None:
    """SQLite's renewal neither fails nor answers while another process holds the database:
    it waits the busy timeout (10 s), then the store's write patience."""
    store, clock, lost = SqliteStore(tmp_path / "state.db"), SystemClock(), threading.Event()
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    ttl = 1.0
    try:
        with leases.held(store, "dev", holder="me:1:a", clock=clock, lost=lost, ttl=ttl):
            other.execute("BEGIN EXCLUSIVE")
            try:
                assert lost.wait(ttl + 3.0)
            finally:
                other.execute("COMMIT")
        assert store.lease_holder("dev", now=clock.now()) is None  # released all the same
    finally:
        other.close()
        store.close()
