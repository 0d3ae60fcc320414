"""A run whose lease cannot be renewed (its store failed or stalled) is interrupted as a crash
would interrupt it, not cancelled: it is resumed once the store answers, and the request that
started it is tried again (found by an operator's trial: a 30 s database lock ended the run
`cancelled`, the environment `failed`, and the head was never applied again)."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import pytest

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.errors import LeaseLostError, StoreBusyError
from gitopsd.model.state import RunStatus, StepStatus
from gitopsd.runtime.runs import leases
from tests.runtime.world import World, component, environment

PAIR = {
    "environments/dev.yaml": environment("dev", parallelism=1),
    "components/a/component.yaml": component("a"),
    "components/b/component.yaml": component("b", deps=("a",)),
}


class StallingStore(MemoryStore):
    """A store whose lease renewals fail while `stalled` is set, as a locked database's do."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = threading.Event()
        self.renewals = 0

    def acquire_lease(self, environment: str, holder: str, **options: Any) -> bool:
        self.renewals += 1
        if self.stalled.is_set():
            raise StoreBusyError("the state database is locked")
        return super().acquire_lease(environment, holder, **options)


def test_a_lost_lease_interrupts_the_run_and_the_next_apply_resumes_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "held", functools.partial(leases.held, ttl=1.5))
    store = StallingStore()
    workspace = world.workspace(store)
    world.commit(PAIR)
    world.control(sleep={"a:apply": 3.0})
    stalling = threading.Timer(0.3, store.stalled.set)
    stalling.start()
    try:
        with pytest.raises(LeaseLostError, match="could not be renewed in time"):
            workspace.apply("dev")
        (run,) = store.unfinished_runs("dev")  # left as a crash leaves it: not cancelled
        assert run.status is RunStatus.RUNNING
        steps = {
            s.component: s.status for s in store.list_steps(run.id) if s.action.value == "apply"
        }
        assert steps == {"a": StepStatus.RUNNING, "b": StepStatus.PENDING}
        assert world.calls() == []  # a's driver was stopped before it could finish
        store.stalled.clear()
        world.control()
        resumed = workspace.apply("dev")
    finally:
        stalling.cancel()
        workspace.source.close()
    finished = store.get_run(run.id)
    assert finished is not None and finished.status is RunStatus.SUCCEEDED
    assert world.calls() == ["a", "b"]
    assert resumed.status is RunStatus.SUCCEEDED


class FullStore(MemoryStore):
    """A store that cannot record `a`'s new state while `full` is set, as on a full disk."""

    def __init__(self) -> None:
        super().__init__()
        self.full = threading.Event()

    def save_component(self, state: Any) -> None:
        if self.full.is_set() and state.name == "a":
            raise StoreBusyError("the state database cannot be written: database or disk is full")
        super().save_component(state)


def test_a_step_whose_end_cannot_be_recorded_is_left_to_the_resume_not_failed(
    world: World,
) -> None:
    """`a`'s driver succeeded, but the store could not take its result: it was recorded
    `failed` with the store's error (once the store let it), the run concluded failed; the
    step is now left as a crash leaves it, and the next apply runs it again and goes on."""
    store = FullStore()
    workspace = world.workspace(store)
    world.commit(PAIR)
    store.full.set()
    with pytest.raises(StoreBusyError, match="disk is full"):
        workspace.apply("dev")
    (run,) = store.unfinished_runs("dev")
    steps = {s.component: s.status for s in store.list_steps(run.id) if s.action.value == "apply"}
    assert steps == {"a": StepStatus.RUNNING, "b": StepStatus.PENDING}
    store.full.clear()
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED  # resumes it, then its own
    assert store.get_run(run.id).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    assert world.calls() == ["a", "a", "b"]  # `a` again: its first end was never recorded


class FullDisk(FullStore):
    """`FullStore` whose writes, while full, wait out a patience before they fail, as
    SQLite's on a full disk do (its giving the lease back too)."""

    def release_lease(self, environment: str, holder: str) -> None:
        if self.full.is_set():
            time.sleep(PATIENCE)
            raise StoreBusyError("the state database cannot be written: database or disk is full")
        super().release_lease(environment, holder)


PATIENCE = 5.0


def test_a_run_stopped_by_a_full_store_says_so_without_waiting_to_give_the_lease_back(
    world: World,
) -> None:
    """The command said "the run stops here" at once, then waited the store's whole patience
    (120 s for the CLI) to give back a lease it cannot write, before exiting with the error."""
    store = FullDisk()
    workspace = world.workspace(store)
    world.commit(PAIR)
    store.full.set()
    started = time.monotonic()
    with pytest.raises(StoreBusyError, match="disk is full"):
        workspace.apply("dev")
    assert time.monotonic() - started < PATIENCE  # the lease is left to expire
    store.full.clear()
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED  # this holder takes it again
