"""The intake keeps the newest closed requests of an environment and never an open one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.engine.queueing import Priority
from gitopsd.engine.queueing import Request as Work
from gitopsd.errors import StoreUnavailableError
from gitopsd.model.state import Request, RequestKind, RequestStatus
from gitopsd.runtime.service import intake
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
    waiting = Work(
        id="waiting", environment="dev", priority=Priority.OPERATOR, action=RequestKind.APPLY
    )
    taking.accept(waiting)
    taking.waiting(waiting, reason="a window", until=None)
    looks = intake.KEEP_CLOSED + 20
    for n in range(looks):  # the daemon's own look at an auto promotion, every beat
        clock.current += timedelta(seconds=15)
        look = Work(
            id=f"look-{n:05}",
            environment="dev",
            priority=Priority.SCHEDULED,
            action=RequestKind.PROMOTE,
        )
        taking.accept(look)
        assert taking.running(look)
        taking.finished(look, [])
    kept = store.list_requests("dev", limit=2 * looks)
    assert len(kept) == intake.KEEP_CLOSED + 1
    assert kept[0].id == "waiting" and kept[0].status is RequestStatus.WAITING
    assert kept[-1].id == f"look-{looks - 1:05}"  # the newest closed ones are kept
    assert store.get_request("look-00000") is None


class UnreadableStore(MemoryStore):
    """A store whose reads of requests fail for a while (a transient fault)."""

    unreadable = False

    def get_request(self, request_id: str) -> Request | None:
        if self.unreadable:
            raise StoreUnavailableError("the store cannot be read right now")
        return super().get_request(request_id)


def test_a_late_look_again_never_reopens_an_ended_request_while_the_store_is_unreadable() -> None:
    store, clock = UnreadableStore(), FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    jobs, queued = ManualJobs(clock.now), []
    taking = intake.Intake(
        store, clock=clock, jobs=jobs, admit=queued.append, on_superseded=lambda old, new: None
    )
    old = Work(
        id="old-commit", environment="dev", priority=Priority.COMMIT, action=RequestKind.APPLY
    )
    taking.accept(old)
    taking.superseded(old, by="new-commit")
    fresh = intake.Intake(  # a restarted daemon: nothing of it in memory
        store, clock=clock, jobs=jobs, admit=queued.append, on_superseded=lambda old, new: None
    )
    store.unreadable = True
    fresh.accept(old)  # the old request's look-again fires after it was superseded
    store.unreadable = False
    clock.current += timedelta(minutes=5)
    jobs.run_due()  # the held record's flush
    ended = store.get_request("old-commit")
    assert ended is not None and ended.status is RequestStatus.SUPERSEDED
    assert [work.id for work in queued] == ["old-commit"]  # queued once, when it was new
