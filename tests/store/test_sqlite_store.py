"""The SQLite state store: the store contract, then what only SQLite has (URLs, pragmas, the
schema version, a file that is not a database, a process killed inside a transaction)."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters import faults, migrations
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.engine.ports import StateStore
from gitopsd.errors import StoreBusyError, StoreError
from gitopsd.model.state import ApprovalRecord, ComponentState
from tests.store import before_hold_rows
from tests.store.contract import T0, OpenStore, StoreContract, component, event, request


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


class TestSqliteStoreContract(StoreContract):
    @pytest.fixture
    def reopen(self, db_path: Path) -> OpenStore:
        return functools.partial(SqliteStore, db_path)

    @pytest.fixture
    def store(self, reopen: OpenStore) -> Iterator[StateStore]:
        opened = reopen()
        yield opened
        opened.close()


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(db_path)
    yield opened
    opened.close()


def recorded_versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [version for (version,) in rows]


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[sqlite3.Connection]:
    """Every connection SQLite hands out from now on: what a store was given, seen from the
    library's side (the per-connection settings are only visible on the connection)."""
    made: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def recording(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        made.append(connection)
        return connection

    monkeypatch.setattr(sqlite3, "connect", recording)
    return made


def is_open(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return False
    return True


def test_the_database_is_in_wal_mode_with_durable_settings(
    db_path: Path, connections: list[sqlite3.Connection]
) -> None:
    store = SqliteStore(db_path)
    try:
        store.list_runs()
        with sqlite3.connect(store.path) as outside:
            assert outside.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        given = next(c for c in connections if is_open(c))  # the store's, made first
        assert given.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert given.execute("PRAGMA foreign_keys").fetchone() == (1,)
        # SQLite waits for a lock a quarter of a second at a time, where no signal is heard;
        # the store waits the rest of its 10 s itself (tests/faults/test_crash_resume.py)
        assert given.execute("PRAGMA busy_timeout").fetchone() == (250,)
    finally:
        store.close()


def test_synchronous_is_configurable_and_checked(
    db_path: Path, connections: list[sqlite3.Connection]
) -> None:
    relaxed = SqliteStore(db_path, synchronous="normal")
    try:
        relaxed.list_runs()
        given = [c for c in connections if is_open(c)]
        assert given and all(
            c.execute("PRAGMA synchronous").fetchone() == (1,) for c in given
        )  # NORMAL
    finally:
        relaxed.close()
    with pytest.raises(StoreError, match="synchronous mode 'fast'"):
        SqliteStore(db_path, synchronous="fast")


def test_a_relative_url_is_opened_against_base_and_its_folder_created(tmp_path: Path) -> None:
    store = SqliteStore.from_url("sqlite:///.gitopsd/state.db", base=tmp_path)
    try:
        assert store.path == tmp_path / ".gitopsd" / "state.db"
        assert store.path.is_file()
    finally:
        store.close()


def test_an_absolute_url_ignores_base(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "deeper" / "state.db"
    store = SqliteStore.from_url(f"sqlite:///{target}", base=tmp_path / "elsewhere")
    try:
        assert store.path == target
        assert target.is_file()
    finally:
        store.close()


def test_the_default_base_is_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqliteStore.from_url("sqlite:///here.db")
    try:
        assert store.path == tmp_path / "here.db"
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:////",
        "sqlite://host/state.db",
        "sqlite::memory:",
        "sqlite:///state.db?mode=ro",
        "postgresql://db/gitopsd",
        "state.db",
        "",
    ],
)
def test_a_bad_url_is_refused_with_the_forms_that_work(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"bad state URL .*sqlite:///relative/path\.db"):
        SqliteStore.from_url(url, base=tmp_path)


def test_reopening_applies_each_migration_once_and_keeps_the_data(db_path: Path) -> None:
    for _ in range(3):
        store = SqliteStore(db_path)
        store.save_component(component())
        store.close()
    assert recorded_versions(db_path) == [m.version for m in migrations.MIGRATIONS]
    store = SqliteStore(db_path)
    try:
        assert store.list_components("dev") == [component()]
    finally:
        store.close()


def test_a_database_of_the_first_release_is_upgraded_with_its_data(db_path: Path) -> None:
    kept = component()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(db_path, isolation_level=None)
    migrations.recorded_version(connection)
    for statement in migrations.MIGRATIONS[0].statements:  # as the first release left it
        connection.execute(statement)
    connection.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 't')")
    connection.execute(
        migrations.UPSERT_COMPONENT,
        (
            kept.environment,
            kept.name,
            kept.status.value,
            kept.drift.value,
            "t",
            kept.model_dump_json(),
        ),
    )
    connection.close()
    assert recorded_versions(db_path) == [1]
    store = SqliteStore(db_path)
    try:
        assert recorded_versions(db_path) == [m.version for m in migrations.MIGRATIONS]
        assert store.list_components("dev") == [kept]
        approval = ApprovalRecord(environment="prod", revision="a" * 40, approver="alice", at=T0)
        assert store.add_approval(approval)
        assert store.list_approvals("prod", "a" * 40) == [approval]
    finally:
        store.close()


def test_holds_in_records_of_version_8_become_rows_and_leave_the_records(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        before_hold_rows.write(connection.execute)
    store = SqliteStore(db_path)
    try:
        assert recorded_versions(db_path) == [m.version for m in migrations.MIGRATIONS]
        with contextlib.closing(sqlite3.connect(db_path)) as outside:
            records = [text for (text,) in outside.execute("SELECT record FROM environments")]
        before_hold_rows.check_moved(store, records)
    finally:
        store.close()


def test_stores_opening_a_new_database_at_once_migrate_it_once(db_path: Path) -> None:
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            SqliteStore(db_path).close()
        except BaseException as exc:
            errors.append(exc)

    openers = [threading.Thread(target=open_and_close) for _ in range(6)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    assert errors == []
    assert recorded_versions(db_path) == [m.version for m in migrations.MIGRATIONS]


def test_a_database_from_a_newer_gitopsd_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    newer = migrations.LATEST + 3
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (newer, "now")
        )
    connection.close()
    expected = (
        f"state database {db_path} is at schema version {newer};"
        f" this gitopsd knows up to {migrations.LATEST}; upgrade gitopsd"
    )
    with pytest.raises(StoreError) as raised:
        SqliteStore(db_path)
    assert str(raised.value) == expected


def test_a_file_that_is_not_a_database_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError, match=f"{path} is not a usable SQLite database"):
        SqliteStore(path)


def test_a_folder_in_place_of_the_database_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StoreError, match=str(tmp_path / "state.db")):
        SqliteStore(tmp_path / "state.db")


def test_a_closed_store_refuses_work_and_closes_twice_quietly(store: SqliteStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.get_run("run-1")


def test_threads_that_come_and_go_reuse_the_stores_connection(
    db_path: Path, connections: list[sqlite3.Connection]
) -> None:
    store = SqliteStore(db_path)
    try:
        for _ in range(10):
            reader = threading.Thread(target=store.list_runs)
            reader.start()
            reader.join()
        assert len(connections) == 1  # the migration's, lent to each reader in turn
        assert is_open(connections[0])
    finally:
        store.close()
    assert not any(is_open(c) for c in connections)


def test_a_thread_in_a_transaction_reads_what_it_wrote_while_others_do_not(
    store: SqliteStore,
) -> None:
    seen_outside: list[ComponentState | None] = []
    with store.transaction():
        store.save_component(component("half-written"))
        assert store.get_component("dev", "half-written") is not None
        outside = threading.Thread(
            target=lambda: seen_outside.append(store.get_component("dev", "half-written"))
        )
        outside.start()
        outside.join()
    assert seen_outside == [None]
    assert store.get_component("dev", "half-written") is not None


def test_a_naive_datetime_is_refused_rather_than_guessed(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive datetime 2024-05-01T12:00:00"):
        store.save_component(component(updated_at=datetime(2024, 5, 1, 12, 0)))
    with pytest.raises(ValueError, match="naive datetime"):
        store.lease_holder("dev", now=datetime(2024, 5, 1, 12, 0))
    assert store.list_components("dev") == []


def hold_a_transaction_open(path: Path, inside: Any) -> None:
    """In a separate process: commit one component, then die (SIGKILL) inside a transaction."""
    store = SqliteStore(path)
    store.save_component(component("committed"))
    with store.transaction():
        store.save_component(component("half-written"))
        store.append_event(event("never"))
        inside.set()
        time.sleep(60)


def test_a_process_killed_inside_a_transaction_leaves_nothing_of_it(db_path: Path) -> None:
    SqliteStore(db_path).close()
    context = multiprocessing.get_context("spawn")
    inside = context.Event()
    doomed = context.Process(target=hold_a_transaction_open, args=(db_path, inside))
    doomed.start()
    assert inside.wait(timeout=20)
    doomed.kill()
    doomed.join(timeout=10)
    store = SqliteStore(db_path)
    try:
        assert [c.name for c in store.list_components("dev")] == ["committed"]
        assert store.list_events() == []
        assert store.acquire_lease("dev", "after-the-crash", now=T0, ttl=5)
    finally:
        store.close()


class Locker:
    """Another process's writer: holds the database's write lock until `release`."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.connection.execute("COMMIT")
        self.connection.close()


def test_a_write_waits_out_a_lock_held_past_the_busy_timeout(db_path: Path) -> None:
    patient = SqliteStore(db_path, busy_timeout=0.05, write_patience=30)
    try:
        locker = Locker(db_path)
        releaser = threading.Timer(0.6, locker.release)
        releaser.start()
        started = time.monotonic()
        patient.save_component(component("late"))  # both a lone write...
        with patient.transaction():  # ...and a transaction wait, rather than fail
            patient.save_component(component("later"))
        assert time.monotonic() - started >= 0.5
        assert [c.name for c in patient.list_components("dev")] == ["late", "later"]
        releaser.join()
    finally:
        patient.close()


def test_a_lock_held_past_the_patience_fails_as_a_transient_store_error(db_path: Path) -> None:
    impatient = SqliteStore(db_path, busy_timeout=0.05, write_patience=0.2)
    locker = Locker(db_path)
    try:
        with pytest.raises(StoreBusyError, match="cannot be written: database is locked"):
            impatient.save_component(component("dropped"))
        with pytest.raises(StoreBusyError):
            impatient.append_event(event())
    finally:
        locker.release()
    assert faults.is_transient(StoreBusyError("busy"))
    assert impatient.list_components("dev") == []  # nothing half-written
    impatient.close()


def test_a_request_meeting_this_process_s_busy_writer_does_not_blame_another_lock(
    db_path: Path,
) -> None:
    """Another thread of this process holds the writer (waiting out a full disk, say): the
    error said "database is locked", which sent an operator looking for another process."""
    store = SqliteStore(db_path, busy_timeout=0.2, write_patience=30)
    holding, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with store.transaction():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    holding.wait(10)
    try:
        with pytest.raises(StoreBusyError) as refused:
            store.save_request(request("r1"))
    finally:
        release.set()
        holder.join()
    assert "database is locked" not in str(refused.value)
    assert "this process's other writes have waited 0.2s for it" in str(refused.value)
    store.close()


def test_a_request_queued_behind_a_write_that_waits_out_a_lock_says_the_lock(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the lock; this process's patient write waits it out and holds
    the writer meanwhile: a request queued behind it says what it waits for, as it was met."""
    store = SqliteStore(db_path, busy_timeout=0.2, write_patience=30)
    locker = Locker(db_path)
    waiting = threading.Thread(target=lambda: store.save_component(component("late")))
    waiting.start()
    try:
        deadline = time.monotonic() + 10
        while "is locked by another process" not in caplog.text:  # the patient write met it
            assert time.monotonic() < deadline, "the patient write never met the lock"
            time.sleep(0.01)
        with pytest.raises(StoreBusyError) as refused:
            store.save_request(request("r1"))
    finally:
        locker.release()
        waiting.join()
    assert "cannot be written: database is locked" in str(refused.value)
    assert "this process's other writes have waited 0.2s for it" in str(refused.value)
    store.close()


def test_a_request_meeting_a_lock_fails_after_the_busy_timeout_not_the_patience(
    db_path: Path,
) -> None:
    """The intake holds a request it could not record and shows it retrying: waiting out the
    whole patience would leave a commit unseen that long."""
    store = SqliteStore(db_path, busy_timeout=0.2, write_patience=30)
    locker = Locker(db_path)
    started = time.monotonic()
    try:
        with pytest.raises(StoreBusyError, match=r"tried for 0.2s"):
            store.save_request(request("r1"))
        assert time.monotonic() - started < 5
    finally:
        locker.release()
    assert store.list_requests() == []
    store.close()
