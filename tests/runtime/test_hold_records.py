"""A run's hold change (runtime.records.promotion_records) commits with the run's record and the
environment's, in the transaction runtime.runs.apply_records opens, or not at all: a failure
before its commit leaves neither the run's start or end nor the hold change it decided."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.engine.ports import DriverRunner, StateStore
from gitopsd.model.state import (
    EnvironmentState,
    EnvironmentStatus,
    Event,
    Run,
    RunAction,
    RunStatus,
    VerifiedHold,
)
from gitopsd.runtime.records.promotion_records import KEEP_HOLDS
from gitopsd.runtime.runs import apply_records
from gitopsd.runtime.runs.steps import Services

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD, NEW = "b" * 40, "a" * 40
RUN = Run(id="run-1", environment="dev", revision=NEW, action=RunAction.APPLY, created_at=T0)


class FailingAt:
    """`inner`, whose append of the event `kind` fails: the last write of the transaction that
    records a run's start or end, as a full disk or a crash before its commit would fail it."""

    def __init__(self, inner: StateStore, kind: str) -> None:
        self.inner, self.kind = inner, kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append_event(self, event: Event) -> Event:
        if event.kind == self.kind:
            raise OSError(f"no space left recording {event.kind}")
        return self.inner.append_event(event)


@pytest.fixture(params=["memory", "sqlite"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    store: StateStore = (
        MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    )
    yield store
    store.close()


def services(store: FailingAt, tmp_path: Path) -> Services:
    drivers = cast(DriverRunner, None)  # recording a start or an end calls no driver
    return Services(
        store=cast(StateStore, store), drivers=drivers, clock=SystemClock(), state_root=tmp_path
    )


def verified_at(store: StateStore, revision: str) -> VerifiedHold:
    """`store` as a verified apply of `revision` left it: the record and its open hold."""
    held = VerifiedHold(revision=revision, since=T0)
    store.add_hold("dev", held, keep=KEEP_HOLDS)
    state = EnvironmentState(
        name="dev", revision=revision, status=EnvironmentStatus.VERIFIED, updated_at=T0
    )
    store.save_environment(state)
    return held


def test_a_start_not_recorded_ends_no_hold(inner: StateStore, tmp_path: Path) -> None:
    held = verified_at(inner, OLD)
    failing = FailingAt(inner, "run.started")
    with pytest.raises(OSError, match=r"run\.started"):
        apply_records.started(services(failing, tmp_path), RUN)
    assert inner.list_holds("dev") == [held]
    assert inner.get_run(RUN.id) is None
    failing.kind = "nothing"
    started = apply_records.started(services(failing, tmp_path), RUN)
    assert inner.list_holds("dev") == [held.model_copy(update={"until": started.started_at})]


def test_an_end_not_recorded_starts_no_hold(inner: StateStore, tmp_path: Path) -> None:
    held = verified_at(inner, OLD)
    failing = FailingAt(inner, "run.finished")
    started = apply_records.started(services(failing, tmp_path), RUN)
    with pytest.raises(OSError, match=r"run\.finished"):
        apply_records.finished(services(failing, tmp_path), started, RunStatus.SUCCEEDED, None)
    ended = held.model_copy(update={"until": started.started_at})
    assert inner.list_holds("dev") == [ended]
    recorded = inner.get_run(RUN.id)
    assert recorded is not None and recorded.status is RunStatus.RUNNING
    failing.kind = "nothing"
    done = apply_records.finished(services(failing, tmp_path), started, RunStatus.SUCCEEDED, None)
    assert inner.list_holds("dev") == [ended, VerifiedHold(revision=NEW, since=done.finished_at)]
