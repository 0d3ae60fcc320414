"""The outbox's cursor: resumes after a restart, starts at the end of an old database, delivers
a batch again after a crash in it, and never lets one subscriber stall the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import Event
from gitopsd.runtime.notifications.outbox import CURSOR, Outbox, Stopping

AT = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


class Killed(BaseException):
    """What a `kill -9` mid-delivery looks like from inside: nothing after it runs."""


class Recording:
    def __init__(self, *, die_at: str | None = None, fail_at: str | None = None) -> None:
        self.kinds: list[str] = []
        self.die_at = die_at
        self.fail_at = fail_at

    def __call__(self, event: Event) -> None:
        if event.kind == self.die_at:
            raise Killed
        if event.kind == self.fail_at:
            raise RuntimeError("a bug in a subscriber")
        self.kinds.append(event.kind)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(db)
    yield opened
    opened.close()


def append(store: SqliteStore, *kinds: str) -> None:
    for kind in kinds:
        store.append_event(Event(at=AT, environment="dev", kind=kind, message=kind))


def test_a_new_outbox_on_an_old_database_starts_at_its_end(store: SqliteStore) -> None:
    append(store, "old-1", "old-2")
    seen = Recording()
    outbox = Outbox(store, [seen])
    assert outbox.position() == store.list_events(limit=1)[0].id
    append(store, "new-1")
    assert outbox.deliver_pending() == 1
    assert seen.kinds == ["new-1"]


def test_a_restarted_outbox_resumes_after_what_it_delivered(store: SqliteStore, db: Path) -> None:
    first = Recording()
    Outbox(store, [first]).position()
    append(store, "a", "b")
    Outbox(store, [first]).deliver_pending()
    append(store, "c", "d")  # appended while no daemon ran
    store.close()
    reopened = SqliteStore(db)
    try:
        second = Recording()
        assert Outbox(reopened, [second]).deliver_pending() == 2
        assert (first.kinds, second.kinds) == (["a", "b"], ["c", "d"])
    finally:
        reopened.close()


def test_a_crash_mid_batch_delivers_the_whole_batch_again(store: SqliteStore, db: Path) -> None:
    Outbox(store, []).position()
    append(store, "a", "b", "c", "d", "e")
    dying = Recording(die_at="d")
    with pytest.raises(Killed):
        Outbox(store, [dying], batch=2).deliver_pending()
    assert dying.kinds == ["a", "b", "c"]  # a, b: one saved batch; c: delivered, not saved
    store.close()
    reopened = SqliteStore(db)
    try:
        again = Recording()
        Outbox(reopened, [again], batch=2).deliver_pending()
        assert again.kinds == ["c", "d", "e"]  # at least once: c is delivered twice
    finally:
        reopened.close()


def test_a_failing_subscriber_is_skipped_and_the_others_still_get_the_event(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    Outbox(store, []).position()
    append(store, "a", "b", "c")
    broken, healthy = Recording(fail_at="b"), Recording()
    assert Outbox(store, [broken, healthy]).deliver_pending() == 3
    assert (broken.kinds, healthy.kinds) == (["a", "c"], ["a", "b", "c"])
    assert "an outbox subscriber failed on event" in caplog.text
    assert Outbox(store, [healthy]).deliver_pending() == 0  # b is not retried forever


def test_a_delivery_cut_short_by_stopping_keeps_what_was_done(store: SqliteStore) -> None:
    Outbox(store, []).position()
    append(store, "a", "b", "c")

    def stops_at_b(event: Event) -> None:
        if event.kind == "b":
            raise Stopping

    with pytest.raises(Stopping):
        Outbox(store, [stops_at_b]).deliver_pending()
    again = Recording()
    Outbox(store, [again]).deliver_pending()
    assert again.kinds == ["b", "c"]


def test_the_thread_delivers_when_woken_and_drains_at_stop(store: SqliteStore) -> None:
    seen = Recording()
    outbox = Outbox(store, [seen], interval=60)  # only a wake or the stop makes it look
    outbox.start()
    try:
        append(store, "a")
        outbox.wake()
        deadline = time.monotonic() + 10
        while seen.kinds != ["a"]:
            assert time.monotonic() < deadline, "the woken outbox did not deliver"
            time.sleep(0.01)
        append(store, "b")  # nobody wakes it: only the stop delivers this
    finally:
        outbox.stop(timeout=10)
    assert seen.kinds == ["a", "b"]
    assert store.get_cursor(CURSOR) == store.list_events(limit=1)[0].id


def test_the_outbox_ticks_by_itself(store: SqliteStore) -> None:
    delivered = threading.Event()
    outbox = Outbox(store, [lambda event: delivered.set()], interval=0.05)
    outbox.start()
    try:
        append(store, "a")
        assert delivered.wait(10)
    finally:
        outbox.stop()
