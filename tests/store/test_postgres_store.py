"""The PostgreSQL state store on a real server: the store contract, then what only a shared
store has (URLs, concurrent migrations, reconnection after a restart, fencing, event order)."""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gitopsd.adapters import migrations
from gitopsd.adapters.postgres_store import LEADERSHIP_ROW, PostgresStore
from gitopsd.adapters.urls import redacted
from gitopsd.engine.ports import FencedError, StateStore
from gitopsd.errors import StoreError
from gitopsd.model.state import RunStatus
from gitopsd.runtime import application
from tests.postgres import PostgresServer, free_port
from tests.store import before_hold_rows
from tests.store.contract import (
    T0,
    OpenStore,
    StoreContract,
    approval,
    component,
    event,
    run,
    step,
)


class TestPostgresStoreContract(StoreContract):
    @pytest.fixture
    def reopen(self, postgres_url: str) -> OpenStore:
        return functools.partial(PostgresStore, postgres_url)

    @pytest.fixture
    def store(self, reopen: OpenStore) -> Iterator[StateStore]:
        opened = reopen()
        yield opened
        opened.close()


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url, timeout=20)
    yield opened
    opened.close()


def recorded_versions(url: str) -> list[int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [version for (version,) in rows]


def elect(url: str, epoch: int, holder: str = "host:1:abc") -> None:
    """What an election writes (see postgres_election): the leader's epoch."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO leadership (name, epoch, holder, elected_at) VALUES (%s, %s, %s, 'x')"
            " ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, holder = excluded.holder",
            (LEADERSHIP_ROW, epoch, holder),
        )


# --- opening -------------------------------------------------------------------------------


def test_open_store_opens_both_url_schemes(postgres_url: str) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://")):
        opened = application.open_store(url, base=Path.cwd())
        try:
            assert isinstance(opened, PostgresStore)
            assert opened.list_environments() == []
        finally:
            opened.close()


def test_a_server_that_does_not_answer_is_a_clear_error_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    url = f"postgresql://gitopsd:s3cret-pw@127.0.0.1:{free_port()}/gitopsd"
    with pytest.raises(StoreError, match="cannot open state database") as raised:
        PostgresStore(url)
    assert "s3cret-pw" not in str(raised.value)
    assert "gitopsd:***@127.0.0.1" in str(raised.value)


def test_a_missing_database_is_named_in_the_error(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match='database "no_such_db" does not exist'):
        PostgresStore(postgres_server.url("no_such_db"))


def test_passwords_are_redacted_from_urls() -> None:
    assert redacted("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redacted("postgresql://h/db?password=pw&sslmode=require") == (
        "postgresql://h/db?password=***&sslmode=require"
    )
    assert redacted("postgresql://u@h/db") == "postgresql://u@h/db"


# --- migrations ----------------------------------------------------------------------------


def test_the_schema_is_migrated_once_even_when_stores_open_at_once(postgres_url: str) -> None:
    errors: list[BaseException] = []
    opened: list[PostgresStore] = []

    def open_one() -> None:
        try:
            opened.append(PostgresStore(postgres_url))
        except BaseException as error:
            errors.append(error)

    racers = [threading.Thread(target=open_one) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    for each in opened:
        each.close()
    assert errors == []
    assert recorded_versions(postgres_url) == [m.version for m in migrations.MIGRATIONS]


def test_holds_in_records_of_version_8_become_rows_and_leave_the_records(
    postgres_url: str,
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        before_hold_rows.write(
            lambda sql, params: connection.execute(migrations.for_postgresql(sql), params)
        )
    store = PostgresStore(postgres_url)
    try:
        assert recorded_versions(postgres_url) == [m.version for m in migrations.MIGRATIONS]
        with psycopg.connect(postgres_url) as connection:
            rows = connection.execute("SELECT record FROM environments").fetchall()
        before_hold_rows.check_moved(store, [text for (text,) in rows])
    finally:
        store.close()


def test_a_database_newer_than_this_gitopsd_is_refused(store: PostgresStore) -> None:
    newer = migrations.LATEST + 3
    with psycopg.connect(store.url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, 'x')", (newer,)
        )
    with pytest.raises(StoreError, match=f"schema version {newer}.*upgrade gitopsd"):
        PostgresStore(store.url)


# --- the server restarts -------------------------------------------------------------------


def test_the_store_reconnects_after_the_server_restarts(
    store: PostgresStore, postgres_server: PostgresServer
) -> None:
    store.save_run(run("before"))
    postgres_server.restart()
    store.save_run(run("after"))  # the pooled connection died; a checked one replaces it
    with store.transaction():
        store.save_step(step(0, run_id="after"))
    assert sorted(r.id for r in store.list_runs()) == ["after", "before"]
    assert store.list_steps("after") == [step(0, run_id="after")]


def test_a_write_waits_for_a_server_that_is_coming_back(
    store: PostgresStore, postgres_server: PostgresServer
) -> None:
    store.save_run(run("before"))
    postgres_server.stop()
    starter = threading.Timer(1.0, postgres_server.start)
    starter.start()
    try:
        store.save_run(run("during"))
    finally:
        starter.join()
    assert store.get_run("during") == run("during")


def test_a_server_gone_for_longer_than_the_timeout_is_a_store_error(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    impatient = PostgresStore(postgres_url, timeout=0.5)
    try:
        postgres_server.stop()
        with pytest.raises(StoreError, match=r"the state database .* failed"):
            impatient.save_run(run())
    finally:
        postgres_server.start()
        impatient.close()


# --- fencing -------------------------------------------------------------------------------


def test_the_current_leaders_writes_succeed(store: PostgresStore) -> None:
    elect(store.url, 3)
    leader = store.fenced(3)
    leader.save_run(run())
    with leader.transaction():
        leader.save_step(step())
        leader.save_component(component())
        leader.append_event(event())
    assert leader.acquire_lease("dev", "me", now=T0, ttl=30)
    assert store.get_run("run-1") == run()
    assert store.list_steps("run-1") == [step()]


def test_a_deposed_leader_records_nothing(store: PostgresStore) -> None:
    elect(store.url, 3)
    seen: list[FencedError] = []
    deposed = store.fenced(3, on_fenced=seen.append)
    elect(store.url, 4, holder="other:2:def")
    writes = [
        lambda: deposed.save_run(run()),
        lambda: deposed.save_step(step()),
        lambda: deposed.save_component(component()),
        lambda: deposed.save_components([component("dns"), component("web")]),
        lambda: deposed.delete_component("dev", "network"),
        lambda: deposed.append_event(event()),
        lambda: deposed.acquire_lease("dev", "me", now=T0, ttl=30),
        lambda: deposed.release_lease("dev", "me"),
    ]
    for write in writes:
        with pytest.raises(FencedError, match=r"epoch 3, but epoch 4 \(other:2:def\) leads"):
            write()
    with pytest.raises(FencedError), deposed.transaction():
        deposed.add_approval(approval())  # unfenced, but its transaction is not
        deposed.save_run(run())
    assert len(seen) == len(writes) + 1
    assert store.get_run("run-1") is None
    assert store.list_events() == [] and store.list_steps("run-1") == []
    assert store.list_components("dev") == []
    assert store.lease_holder("dev", now=T0) is None
    assert store.list_approvals("prod", "a" * 40) == []


def test_a_standby_view_refuses_every_fenced_write(store: PostgresStore) -> None:
    with pytest.raises(FencedError, match="epoch 0"):
        store.fenced(0).save_run(run())
    assert store.fenced(0).add_approval(approval())  # people's acts are not fenced
    store.save_run(run())  # the unfenced store (the CLI) writes as before


def test_an_election_waits_for_a_fenced_write_in_flight(store: PostgresStore) -> None:
    elect(store.url, 1)
    leader = store.fenced(1)
    elected = threading.Event()

    def election() -> None:
        elect(store.url, 2)
        elected.set()

    with leader.transaction():
        leader.save_run(run())  # holds the leadership row shared until COMMIT
        voter = threading.Thread(target=election)
        voter.start()
        assert not elected.wait(0.3)
    voter.join(5)
    assert elected.is_set()
    assert store.get_run("run-1") == run()  # committed before the new epoch began
    with pytest.raises(FencedError):
        leader.save_run(run(status=RunStatus.RUNNING))


def test_a_write_left_open_by_a_frozen_leader_holds_off_the_next_election_only_briefly(
    store: PostgresStore,
) -> None:
    """A leader frozen (`docker pause`, a stalled VM, Ctrl-Z) inside a fenced write's
    transaction held the leadership row until it woke: the next leader's election waited
    for as long as the freeze lasted. The server now ends a session left idle inside a
    transaction after `idle_transaction_timeout`; the woken leader's write fails, and
    nothing of its transaction is recorded."""
    elect(store.url, 1)
    frozen_store = PostgresStore(store.url, idle_transaction_timeout=1.0)
    leader = frozen_store.fenced(1)
    inside, wake, elected = threading.Event(), threading.Event(), threading.Event()
    failures: list[Exception] = []

    def frozen() -> None:
        try:
            with leader.transaction():
                leader.save_run(run())  # holds the leadership row shared until COMMIT
                inside.set()
                wake.wait(30)  # frozen: not a statement sent meanwhile
                leader.save_run(run(status=RunStatus.RUNNING))
        except Exception as error:
            failures.append(error)

    def election() -> None:
        elect(store.url, 2)
        elected.set()

    writer = threading.Thread(target=frozen)
    writer.start()
    voter = threading.Thread(target=election)
    try:
        assert inside.wait(10)
        voter.start()
        assert elected.wait(10), "the election waited for the frozen leader's transaction"
    finally:
        wake.set()
        writer.join(30)
        voter.join(30)
        frozen_store.close()
    (failure,) = failures
    assert isinstance(failure, StoreError), failure  # said in one line, not psycopg's error
    assert "idle-in-transaction timeout" in str(failure)
    assert store.get_run("run-1") is None


# --- the audit trail as a feed -------------------------------------------------------------


def test_events_after_an_id_come_oldest_first_up_to_a_limit(store: PostgresStore) -> None:
    stored = [store.append_event(event(f"k{n}")) for n in range(5)]
    first = stored[0].id or 0
    assert store.list_events_after(first, limit=3) == stored[1:4]
    assert store.list_events_after(stored[-1].id or 0, limit=3) == []
    assert store.list_events_after(0, limit=100) == stored


def test_cursors_are_saved_and_overwritten(store: PostgresStore) -> None:
    assert store.get_cursor("outbox") is None
    store.save_cursor("outbox", 7)
    store.save_cursor("outbox", 9)
    store.save_cursor("other", 1)
    assert (store.get_cursor("outbox"), store.get_cursor("other")) == (9, 1)


def append_many(url: str, count: int) -> None:
    opened = PostgresStore(url)
    try:
        for number in range(count):
            opened.append_event(event("tick", data={"n": number}))
    finally:
        opened.close()


def test_a_reader_following_ids_never_skips_an_event(store: PostgresStore) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=append_many, args=(store.url, 50)) for _ in range(2)]
    for writer in writers:
        writer.start()
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while any(writer.is_alive() for writer in writers) or len(seen) < 100:
        assert time.monotonic() < deadline, [writer.exitcode for writer in writers]
        batch = store.list_events_after(seen[-1] if seen else 0, limit=7)
        seen += [e.id or 0 for e in batch]
        assert len(seen) <= 100
    for writer in writers:
        writer.join(10)
        assert writer.exitcode == 0
    assert seen == sorted(e.id or 0 for e in store.list_events(limit=1000))
