"""The intake keeps the newest closed requests of an environment and never an open one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.engine.queueing import Priority
from gitopsd.engine.queueing import Request as Work
from gitopsd.model.state import RequestStatus
from gitopsd.runtime import intake
from tests.daemon.conftest import FakeClock


def test_closed_requests_beyond_the_kept_number_are_forgotten_open_ones_stay() -> None:
    store, clock = MemoryStore(), FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    queued: list[Work] = []
    taking = intake.Intake(
        store,
        clock=clock,
        jobs=ManualJobs(clock.now),
        admit=queued.append,
        on_superseded=lambda old, new: None,
    )
    waiting = Work(id="waiting", environment="dev", priority=Priority.OPERATOR, action="apply")
    taking.accept(waiting)
    taking.waiting(waiting, reason="a window", until=None)
    looks = intake.KEEP_CLOSED + 20
    for n in range(looks):  # the daemon's own look at an auto promotion, every beat
        clock.current += timedelta(seconds=15)
        look = Work(
            id=f"look-{n:05}", environment="dev", priority=Priority.SCHEDULED, action="promote"
        )
        taking.accept(look)
        assert taking.running(look)
        taking.finished(look, [])
    kept = store.list_requests("dev", limit=2 * looks)
    assert len(kept) == intake.KEEP_CLOSED + 1
    assert kept[0].id == "waiting" and kept[0].status is RequestStatus.WAITING
    assert kept[-1].id == f"look-{looks - 1:05}"  # the newest closed ones are kept
    assert store.get_request("look-00000") is None
