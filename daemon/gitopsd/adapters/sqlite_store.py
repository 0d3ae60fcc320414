"""The durable state store on SQLite: what survives a `kill -9` between two steps of a run.

The executor writes each step before and after it runs, and commits an apply's result, the
component's new state and the audit event in one `transaction()`; `gitopsd` resumes from here
after a crash, and `status`, `runs` and `history` read from here. It implements the engine's
`StateStore` port; the schema and its migrations live in `migrations`.

Why it is built this way:
- connections lent to a statement or a transaction and a few kept between loans
  (`sqlite_connections`), in WAL mode so readers never wait for the writer;
- a write that finds the database locked (another process holds the write lock) is tried
  again at once for `busy_timeout` (10 s), then, like one that finds the disk full, with
  backoff for up to `write_patience` seconds more before it fails as `StoreBusyError`
  (transient, see `faults`): a driver that finished while the store was locked gets its
  result recorded once the store answers, late, not lost. The waiting is done here, in
  Python, and SQLite's own busy handler waits a quarter of a second at most: a process told
  to stop (`stopping` set, by its first SIGINT or SIGTERM) gives up waiting at once, where a
  wait inside SQLite kept an operator's Ctrl-C waiting as long as the other process held the
  lock;
- explicit transactions that start with `BEGIN IMMEDIATE`: a writer takes the lock before it
  reads, so read-decide-write (the lease) cannot race another thread or process, and two
  writers never deadlock upgrading a read lock; a nested `transaction()` is a savepoint that
  commits with the outermost one;
- records kept whole as JSON next to the few columns that are queried, and every timestamp
  normalised to UTC, written as fixed-width ISO-8601 text that sorts chronologically.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from gitopsd.adapters import faults, history_sql, migrations
from gitopsd.adapters.sqlite_connections import Connections
from gitopsd.engine import retrying
from gitopsd.errors import StoreBusyError, StoreError
from gitopsd.model.manifests import RetryPolicy
from gitopsd.model.state import (
    ApprovalRecord,
    ComponentState,
    DriverProcess,
    EnvironmentState,
    Event,
    Record,
    Request,
    Run,
    SavedPlan,
    Step,
    VerifiedHold,
)

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)
T = TypeVar("T")

_BUSY_TIMEOUT = 10.0  # seconds a write waits for another writer's lock, tried again at once
_WRITE_PATIENCE = 120.0  # seconds a write keeps trying after that, with backoff, before it fails
_BUSY_SLICE = 0.25  # seconds SQLite's own busy handler waits, in which no signal is handled
_WRITE_BACKOFF = RetryPolicy(attempts=100, backoff=0.05, max_backoff=2.0)
_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
# A connection keeps the pages it last read in a cache of its own (SQLite's default allows
# 2 MB). SQLite allocates a cache's first 20 pages as one block when the connection first
# reads, and every page past those as a block of its own (4.4 KB), freed when another
# connection's write empties the cache (WAL: at this one's next read) and allocated again
# by the next read, about a thousand a commit: held while the commit's transient work came
# and went around them, they were the blocks at the top of the daemon's heaps, and most of
# what the heaps held more after a long life (benchmarks/README.md, memory: heaptrack).
# Sized to that first block, a connection's cache is allocated once; the file's pages stay
# in the system's cache, a read past it is a copy from there.
_PAGE_CACHE_PAGES = 20
# Connections kept open between loans: enough that the workers of a run whose drivers overlap
# (up to sixteen) seldom have to open one (benchmarks/README.md, design choices).
_IDLE_CONNECTIONS = 4
_URL_PREFIX = "sqlite:///"


class SqliteStore:
    """A `StateStore` in one SQLite file, safe to share between threads and processes.

    `close()` must be called once no other thread is using the store any more.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = _BUSY_TIMEOUT,
        write_patience: float = _WRITE_PATIENCE,
        stopping: threading.Event | None = None,
        create_folder: bool = True,
        read_only: bool = False,
    ) -> None:
        """`read_only`: for commands that only read (status, runs, history): an existing
        database opened without writing anything, so they work on a full or read-only
        disk (`_connect`); StoreError if its schema is not the latest (a write upgrades it).
        `stopping`: once set, a write that finds the database locked fails at once."""
        if synchronous.upper() not in _SYNCHRONOUS_MODES:
            modes = ", ".join(_SYNCHRONOUS_MODES)
            raise StoreError(f"unknown SQLite synchronous mode {synchronous!r}: use {modes}")
        self._path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout, self._patience = busy_timeout, write_patience
        self._stopping = stopping or threading.Event()
        self._local = threading.local()  # the connection of this thread's transaction
        # Writers of this process take turns here rather than in SQLite: a connection that
        # finds the database locked sleeps in SQLite's busy handler (1, 2, 5... 100 ms steps),
        # which costs milliseconds a step when 16 components finish at once.
        self._writer = threading.Lock()
        # what the write holding `_writer` is waiting out (SQLite's words), for the writes
        # queued behind it to say: set and cleared only by that write
        self._waiting_out: str | None = None
        self._connections = Connections(self._open_connection, keep=_IDLE_CONNECTIONS)
        self._closed = False
        self._read_only = read_only
        if read_only:
            self._open_to_read()
            return
        if not create_folder and not path.parent.is_dir():
            raise StoreError(
                f"the folder {path.parent} of the state database {path} does not exist:"
                " create it, or correct the state URL"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of state database {path}: {exc}") from exc
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def _open_to_read(self) -> None:
        """Check that the database is there at the latest schema, without writing."""
        if not self._path.is_file():
            raise StoreError(f"state database {self._path} does not exist yet")
        try:
            with self._connected() as connection:
                found = connection.execute(migrations.RECORDED_VERSION).fetchone()[0]
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"cannot read state database {self._path}: {exc}") from exc
        if found != migrations.LATEST:
            self.close()
            raise StoreError(f"state database {self._path} is at schema version {found}")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        base: Path | None = None,
        synchronous: str = "FULL",
        stopping: threading.Event | None = None,
        create_folder: bool = True,
        read_only: bool = False,
    ) -> SqliteStore:
        """Open `sqlite:///relative/path.db` (against `base`, default the current folder) or
        `sqlite:////absolute/path.db`; without `create_folder`, its folder must exist."""
        path = _path_from_url(url, base=Path.cwd() if base is None else base)
        return cls(
            path,
            synchronous=synchronous,
            stopping=stopping,
            create_folder=create_folder,
            read_only=read_only,
        )

    @property
    def path(self) -> Path:
        return self._path

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all (the exception is re-raised).
        The thread keeps one connection throughout, which its other statements meanwhile use."""
        depth: int = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                with _savepoint(self._local.connection, depth):
                    yield
            finally:
                self._local.depth = depth
            return
        with self._writer, self._connected() as connection:
            self._local.connection, self._local.depth = connection, 1
            try:
                begin = lambda: self._patiently(lambda: connection.execute("BEGIN IMMEDIATE"))  # noqa: E731
                with _immediate(connection, begin):
                    yield
            except sqlite3.OperationalError as error:
                raise self._failed_write(error) from error
            finally:
                self._local.connection, self._local.depth = None, 0

    def _failed_write(self, error: sqlite3.OperationalError) -> StoreError:
        """A statement of a transaction, or its COMMIT, that SQLite refused (the disk full,
        the database locked): the store's error, which callers know and say in one line,
        not sqlite3's (it ended a command with a traceback)."""
        if faults.is_transient(error):
            return self._busy(error)
        return StoreError(f"the state database {self._path} cannot be written: {error}")

    def fencing(self) -> None:
        """None: a store of one process's own, nothing to fence (engine.ports.Fencing)."""
        return None

    def close(self) -> None:
        self._closed = True
        self._connections.close()

    # environments

    def get_environment(self, name: str) -> EnvironmentState | None:
        return self._one(EnvironmentState, "SELECT record FROM environments WHERE name = ?", name)

    def list_environments(self) -> list[EnvironmentState]:
        return self._all(EnvironmentState, "SELECT record FROM environments ORDER BY name")

    def save_environment(self, state: EnvironmentState) -> None:
        row = (
            state.name,
            state.status.value,
            migrations.stamp(state.updated_at),
            state.model_dump_json(),
        )
        self._write(migrations.UPSERT_ENVIRONMENT, *row)

    # the environments' verified holds

    def list_holds(self, environment: str, *, newest: int | None = None) -> list[VerifiedHold]:
        limit = -1 if newest is None else newest  # LIMIT -1: no limit
        with self._connected() as connection:
            rows = connection.execute(migrations.LIST_HOLDS, (environment, limit)).fetchall()
        return migrations.holds_of(rows)

    def add_hold(self, environment: str, hold: VerifiedHold, *, keep: int) -> None:
        with self.transaction():
            connection = self._local.connection
            connection.execute(migrations.INSERT_HOLD, migrations.hold_row(environment, hold))
            connection.execute(migrations.FORGET_OLD_HOLDS, (environment, environment, keep))

    def end_hold(self, environment: str, *, at: datetime) -> None:
        self._write(migrations.END_HOLD, migrations.stamp(at), environment)

    # components

    def get_component(self, environment: str, name: str) -> ComponentState | None:
        sql = "SELECT record FROM components WHERE environment = ? AND name = ?"
        return self._one(ComponentState, sql, environment, name)

    def list_components(
        self, environment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ComponentState]:
        first = "" if after is None else after  # every name is longer: from the first
        limited = -1 if limit is None else limit
        return self._all(ComponentState, history_sql.COMPONENTS_PAGE, environment, first, limited)

    def component_names(self, environment: str) -> list[str]:
        sql = "SELECT name FROM components WHERE environment = ? ORDER BY name"
        with self._connected() as connection:
            return [name for (name,) in connection.execute(sql, (environment,)).fetchall()]

    def save_component(self, state: ComponentState) -> None:
        self._write(migrations.UPSERT_COMPONENT, *_component_row(state))

    def save_components(self, states: Sequence[ComponentState]) -> None:
        rows = [_component_row(state) for state in states]
        with self.transaction():
            self._local.connection.executemany(migrations.UPSERT_COMPONENT, rows)

    def delete_component(self, environment: str, name: str) -> None:
        self._write("DELETE FROM components WHERE environment = ? AND name = ?", environment, name)

    # runs and their steps

    def save_run(self, run: Run) -> None:
        self._write(
            migrations.UPSERT_RUN,
            *(run.id, run.environment, run.action.value, run.status.value),
            *(int(run.status.is_finished), migrations.stamp(run.created_at), run.model_dump_json()),
        )

    def get_run(self, run_id: str) -> Run | None:
        return self._one(Run, "SELECT record FROM runs WHERE id = ?", run_id)

    def list_runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> list[Run]:
        filters = {"environment": environment, "status": status, "action": action}
        sql, params = history_sql.runs_page(filters, before)
        return self._all(Run, sql, *params, limit)

    def unfinished_runs(self, environment: str | None = None) -> list[Run]:
        where, params = migrations.where({"is_finished": 0, "environment": environment})
        sql = f"SELECT record FROM runs{where} ORDER BY created_at, id"  # noqa: S608
        return self._all(Run, sql, *params)

    def save_step(self, step: Step) -> None:
        self._write(migrations.UPSERT_STEP, *_step_row(step))

    def save_steps(self, steps: Iterable[Step]) -> None:
        rows = [_step_row(step) for step in steps]
        with self.transaction():
            self._local.connection.executemany(migrations.UPSERT_STEP, rows)

    def list_steps(
        self, run_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        first = -1 if after is None else after  # indexes start at 0: from the first
        return self._all(
            Step, history_sql.STEPS_PAGE, run_id, first, -1 if limit is None else limit
        )

    def prune_runs(
        self, environment: str, *, created_before: datetime, keep: int, limit: int
    ) -> int:
        before = migrations.stamp(created_before)
        with self.transaction():
            connection = self._local.connection
            params = (environment, before, environment, keep, limit)
            chosen = [row[0] for row in connection.execute(history_sql.PRUNABLE_RUNS, params)]
            if not chosen:
                return 0
            steps = history_sql.delete_steps_of(len(chosen))
            deleted = connection.execute(steps, (*chosen, limit)).rowcount
            if deleted < limit:
                runs = history_sql.delete_runs_without_steps(len(chosen[: limit - deleted]))
                deleted += connection.execute(runs, chosen[: limit - deleted]).rowcount
            return int(deleted)

    def history_scopes(self) -> list[str | None]:
        with self._connected() as connection:
            rows = connection.execute(history_sql.HISTORY_SCOPES).fetchall()
        return [environment for (environment,) in rows]

    # the audit trail: append-only, so there is no update or delete

    def append_event(self, event: Event) -> Event:
        """Store `event` and return it with its id, greater than every earlier event's."""
        cursor = self._write(
            "INSERT INTO events (at, environment, run_id, kind, record) VALUES (?, ?, ?, ?, ?)",
            *(migrations.stamp(event.at), event.environment, event.run_id, event.kind),
            event.model_dump_json(exclude={"id"}),
        )
        return event.model_copy(update={"id": cursor.lastrowid})

    def list_events(
        self,
        environment: str | None = None,
        *,
        run_id: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[Event]:
        where, params = migrations.where({"environment": environment, "run_id": run_id})
        if before is not None:
            where, params = f"{where} AND id < ?" if where else " WHERE id < ?", [*params, before]
        sql = f"SELECT id, record FROM events{where} ORDER BY id DESC LIMIT ?"  # noqa: S608
        with self._connected() as connection:
            rows = connection.execute(sql, (*params, limit)).fetchall()
        return [_decode(Event, record).model_copy(update={"id": id_}) for id_, record in rows]

    def list_events_after(self, after_id: int, *, limit: int) -> list[Event]:
        """Oldest first. SQLite commits one writer at a time, so ids become visible in order:
        nothing can appear below an id already read."""
        sql = "SELECT id, record FROM events WHERE id > ? ORDER BY id LIMIT ?"
        with self._connected() as connection:
            rows = connection.execute(sql, (after_id, limit)).fetchall()
        return [_decode(Event, record).model_copy(update={"id": id_}) for id_, record in rows]

    def prune_events(
        self, environment: str | None, *, before: datetime, keep: int, up_to: int, limit: int
    ) -> int:
        sql, params = history_sql.prune_events(environment, before, keep, up_to, limit)
        with self.transaction():
            return int(self._local.connection.execute(sql, params).rowcount)

    # named cursors

    def get_cursor(self, name: str) -> int | None:
        with self._connected() as connection:
            sql = "SELECT value FROM cursors WHERE name = ?"
            found = connection.execute(sql, (name,)).fetchone()
        return None if found is None else int(found[0])

    def save_cursor(self, name: str, value: int) -> None:
        self._write(migrations.UPSERT_CURSOR, name, value)

    # approvals

    def add_approval(self, approval: ApprovalRecord) -> bool:
        cursor = self._write(
            migrations.INSERT_APPROVAL,
            *(approval.environment, approval.revision, approval.approver),
            *(migrations.stamp(approval.at), approval.model_dump_json()),
        )
        return cursor.rowcount == 1

    def replace_approval(self, approval: ApprovalRecord) -> None:
        self._write(
            migrations.UPSERT_APPROVAL,
            *(approval.environment, approval.revision, approval.approver),
            *(migrations.stamp(approval.at), approval.model_dump_json()),
        )

    def list_approvals(self, environment: str, revision: str) -> list[ApprovalRecord]:
        sql = "SELECT record FROM approvals WHERE environment = ? AND revision = ? ORDER BY at"
        return self._all(ApprovalRecord, sql, environment, revision)

    # saved plans

    def save_plan(self, plan: SavedPlan) -> None:
        self._write(migrations.UPSERT_PLAN, *migrations.plan_row(plan))

    def get_plan(self, plan_id: str) -> SavedPlan | None:
        return self._one(SavedPlan, "SELECT record FROM plans WHERE id = ?", plan_id)

    def claim_plan(self, plan_id: str, *, at: datetime, run_id: str | None) -> bool:
        plan = self.get_plan(plan_id)
        if plan is None or plan.applied_at is not None:
            return False
        used = plan.model_copy(update={"applied_at": at, "applied_by": run_id})
        stamp = migrations.stamp(at)
        cursor = self._write(migrations.CLAIM_PLAN, stamp, used.model_dump_json(), plan_id)
        return cursor.rowcount == 1

    # requests for work

    def save_request(self, request: Request) -> None:
        """Tried once (SQLite's busy timeout), not with `write_patience`: the intake keeps a
        request it could not record, shows it as retrying and records it later, which it
        cannot do while it waits here (a commit would stay unseen for minutes)."""
        self._write_once(migrations.UPSERT_REQUEST, *_request_row(request))

    def get_request(self, request_id: str) -> Request | None:
        return self._one(Request, "SELECT record FROM requests WHERE id = ?", request_id)

    def list_requests(
        self, environment: str | None = None, *, open_only: bool = False, limit: int = 1000
    ) -> list[Request]:
        filters = {"environment": environment, "is_open": 1 if open_only else None}
        where, params = migrations.where(filters)
        sql = f"SELECT record FROM requests{where} ORDER BY created_at, id LIMIT ?"  # noqa: S608
        return self._all(Request, sql, *params, limit)

    def forget_closed_requests(self, environment: str, *, keep: int) -> None:
        self._write(migrations.FORGET_CLOSED_REQUESTS, environment, environment, keep)

    # the one-run-per-environment lease

    def acquire_lease(
        self,
        environment: str,
        holder: str,
        *,
        now: datetime,
        ttl: float,
        takeover: str | None = None,
    ) -> bool:
        """Take or renew the lease until `now + ttl`. Succeeds when it is free, expired, held
        by `holder` already, or held by `takeover` (a holder known to be dead)."""
        now = migrations.utc(now)
        with self.transaction():
            current = self._lease(environment)
            if current is not None and current[1] > now and current[0] not in (holder, takeover):
                return False
            expires_at = migrations.stamp(now + timedelta(seconds=ttl))
            row = (environment, holder, expires_at)
            self._local.connection.execute(migrations.UPSERT_LEASE, row)
        return True

    def release_lease(self, environment: str, holder: str) -> None:
        sql = "DELETE FROM leases WHERE environment = ? AND holder = ?"
        self._write(sql, environment, holder)

    def lease_holder(self, environment: str, *, now: datetime) -> str | None:
        now = migrations.utc(now)
        current = self._lease(environment)
        return current[0] if current is not None and current[1] > now else None

    # the process groups of running drivers

    def save_driver_process(self, process: DriverProcess) -> None:
        row = (process.host, process.pid, process.environment)
        recorded = migrations.stamp(process.recorded_at)
        self._write(migrations.UPSERT_DRIVER_PROCESS, *row, recorded, process.model_dump_json())

    def list_driver_processes(self, environment: str) -> list[DriverProcess]:
        sql = (
            "SELECT record FROM driver_processes WHERE environment = ?"
            " ORDER BY recorded_at, host, pid"
        )
        return self._all(DriverProcess, sql, environment)

    def delete_driver_process(self, host: str, pid: int) -> None:
        self._write("DELETE FROM driver_processes WHERE host = ? AND pid = ?", host, pid)

    def forget_driver_processes(self, run_id: str) -> None:
        sql = "DELETE FROM driver_processes WHERE json_extract(record, '$.run_id') = ?"
        self._write(sql, run_id)

    # plumbing

    def _lease(self, environment: str) -> tuple[str, datetime] | None:
        sql = "SELECT holder, expires_at FROM leases WHERE environment = ?"
        with self._connected() as connection:
            row = connection.execute(sql, (environment,)).fetchone()
        return None if row is None else (row[0], datetime.fromisoformat(row[1]))

    def _one(self, model: type[R], sql: str, *params: object) -> R | None:
        with self._connected() as connection:
            row = connection.execute(sql, params).fetchone()
        return None if row is None else _decode(model, row[0])

    def _all(self, model: type[R], sql: str, *params: object) -> list[R]:
        # A lone SELECT in autocommit mode is its own read transaction: it sees one snapshot
        # and, in WAL mode, neither waits for nor blocks a writer.
        with self._connected() as connection:
            rows = connection.execute(sql, params).fetchall()
        return [_decode(model, record) for (record,) in rows]

    def _write(self, sql: str, *params: object) -> sqlite3.Cursor:
        """One statement, atomic on its own. Inside a transaction it simply joins it; outside,
        it runs in autocommit mode, which SQLite makes a transaction of its own: a BEGIN and
        COMMIT (or a savepoint) around a single statement would buy nothing and cost two more
        round trips, each a wait for the GIL while 16 components finish at once."""
        ongoing = self._ongoing()
        if ongoing is not None:
            return ongoing.execute(sql, params)
        with self._writer, self._connected() as connection:
            return self._patiently(lambda: connection.execute(sql, params))

    def _write_once(self, sql: str, *params: object) -> sqlite3.Cursor:
        """`_write` without the patience: a lock held past the busy timeout (by another
        process, or by this one's writers) is a StoreBusyError at once."""
        ongoing = self._ongoing()
        if ongoing is not None:
            return ongoing.execute(sql, params)
        if not self._writer.acquire(timeout=self._busy_timeout):
            raise self._queued_too_long()
        try:
            with self._connected() as connection:
                return self._patiently(lambda: connection.execute(sql, params), patience=0.0)
        finally:
            self._writer.release()

    def _queued_too_long(self) -> StoreBusyError:
        """This process's writer was held past the busy timeout: by a write waiting out
        another process's lock or a full disk (its error is said, as it was met), or by one
        simply busy (then no SQLite words: a "database is locked" would send an operator
        looking for another process)."""
        queued = f"this process's other writes have waited {self._busy_timeout:g}s for it"
        met = self._waiting_out
        said = queued if met is None else f"{met} ({queued}, behind one that meets this)"
        return StoreBusyError(f"the state database {self._path} cannot be written: {said}")

    def _patiently(self, write: Callable[[], T], *, patience: float | None = None) -> T:
        """`write`, tried again while the database is locked or the disk full: at once while
        another writer's lock has been waited for less than `busy_timeout` (SQLite's busy
        handler waits a slice between tries), then with backoff and jitter for `patience`
        seconds more (default `write_patience`); then, or as soon as `stopping` is set,
        `StoreBusyError`. A wait for a lock is logged once: it is why a command seems stuck."""
        patience = self._patience if patience is None else patience
        began = time.monotonic()
        backoffs = 0
        said = False
        try:
            while True:
                try:
                    return write()
                except sqlite3.OperationalError as error:
                    if not faults.is_transient(error):
                        raise
                    self._waiting_out = str(error)
                    if self._stopping.is_set():
                        raise self._busy(error, stopping=True) from error
                    waited = time.monotonic() - began
                    locked = error.sqlite_errorname == "SQLITE_BUSY"
                    allowed = patience + (self._busy_timeout if locked else 0.0)
                    if locked and not said:
                        said = True
                        log.warning(
                            "the state database %s is locked by another process:"
                            " waiting for it (up to %gs)",
                            self._path,
                            allowed,
                        )
                    if locked and waited < self._busy_timeout:
                        continue  # SQLite's busy handler has just waited a slice
                    if waited >= allowed:
                        raise self._busy(error, tried=allowed) from error
                backoffs += 1
                delay = retrying.delay_before(backoffs + 1, _WRITE_BACKOFF, uniform=random.uniform)
                self._stopping.wait(min(delay, allowed - waited))
        finally:
            self._waiting_out = None  # what it waited out is behind it, or its own error

    def _busy(
        self, error: sqlite3.OperationalError, *, tried: float | None = None, stopping: bool = False
    ) -> StoreBusyError:
        said = f"the state database {self._path} cannot be written: {error}"
        if stopping:
            return StoreBusyError(f"{said} (not waited for: gitopsd is stopping)")
        return StoreBusyError(said if tried is None else f"{said} (tried for {tried:g}s)")

    @contextlib.contextmanager
    def _connected(self) -> Iterator[sqlite3.Connection]:
        """The connection of this thread's transaction, or one lent for the block."""
        if self._closed:
            raise StoreError(f"the state store {self._path} is closed")
        ongoing = self._ongoing()
        if ongoing is not None:
            yield ongoing
            return
        with self._connections.borrowed() as connection:
            yield connection

    def _ongoing(self) -> sqlite3.Connection | None:
        """The connection of this thread's transaction, if it is in one."""
        ongoing: sqlite3.Connection | None = getattr(self._local, "connection", None)
        return ongoing

    def _open_connection(self) -> sqlite3.Connection:
        if self._read_only:
            return self._connect_to_read()
        try:
            # Each connection stays in the thread that opened it; close() may run elsewhere.
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open state database {self._path}: {exc}") from exc
        try:
            _configure(
                connection,
                synchronous=self._synchronous,
                busy=min(_BUSY_SLICE, self._busy_timeout),
            )
        except sqlite3.DatabaseError as exc:
            connection.close()
            if exc.sqlite_errorname == "SQLITE_NOTADB":
                raise StoreError(f"{self._path} is not a usable SQLite database: {exc}") from exc
            raise StoreError(f"cannot open state database {self._path}: {exc}") from exc
        if self._closed:
            connection.close()
            raise StoreError(f"the state store {self._path} is closed")
        return connection

    def _connect_to_read(self) -> sqlite3.Connection:
        """A connection that never writes. `mode=ro` sees what a running daemon commits, but
        needs the `-shm` file it may have to create; where the disk cannot take it (full,
        read-only) the file is read as it is (`immutable`): changes still in a WAL left by a
        killed process are not seen until a writing command folds them in."""
        uri = self._path.resolve().as_uri()
        for mode in ("mode=ro", "immutable=1"):
            try:
                connection = sqlite3.connect(
                    f"{uri}?{mode}", uri=True, isolation_level=None, check_same_thread=False
                )
            except sqlite3.OperationalError:
                continue
            try:
                connection.execute(f"PRAGMA busy_timeout = {round(self._busy_timeout * 1000)}")
                connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return connection
            except sqlite3.OperationalError:
                connection.close()
        raise StoreError(f"cannot open state database {self._path} to read")

    def _migrate(self) -> None:
        try:
            with self._connected() as connection:
                self._patiently(lambda: self._upgrade(connection))
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot bring state database {self._path} to schema version"
                f" {migrations.LATEST}: {exc}"
            ) from exc

    def _upgrade(self, connection: sqlite3.Connection) -> None:
        found = migrations.recorded_version(connection)
        if found > migrations.LATEST:
            raise StoreError(
                f"state database {self._path} is at schema version {found};"
                f" this gitopsd knows up to {migrations.LATEST}; upgrade gitopsd"
            )
        migrations.migrate(connection)


def _configure(connection: sqlite3.Connection, *, synchronous: str, busy: float) -> None:
    connection.execute(f"PRAGMA busy_timeout = {round(busy * 1000)}")
    _enable_wal(connection)
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute(f"PRAGMA cache_size = {_PAGE_CACHE_PAGES}")


def _enable_wal(connection: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at
    # once, without the busy handler, while another connection opens the same new file.
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


@contextlib.contextmanager
def _immediate(connection: sqlite3.Connection, begin: Callable[[], object]) -> Iterator[None]:
    begin()
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back by itself (disk full, I/O error).
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _savepoint(connection: sqlite3.Connection, depth: int) -> Iterator[None]:
    name = f"nested_{depth}"
    connection.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute(f"ROLLBACK TO {name}")
            connection.execute(f"RELEASE {name}")
        raise
    connection.execute(f"RELEASE {name}")


def _path_from_url(url: str, *, base: Path) -> Path:
    rest = url.removeprefix(_URL_PREFIX) if url.startswith(_URL_PREFIX) else ""
    if not rest or rest.endswith("/") or "?" in rest or "#" in rest:
        raise StoreError(
            f"bad state URL {url!r}: use sqlite:///relative/path.db (relative to {base})"
            " or sqlite:////absolute/path.db"
        )
    path = Path(rest)
    return path if path.is_absolute() else base / path


def _component_row(state: ComponentState) -> tuple[str, ...]:
    return (
        *(state.environment, state.name, state.status.value, state.drift.value),
        *(migrations.stamp(state.updated_at), state.model_dump_json()),
    )


def _request_row(request: Request) -> tuple[object, ...]:
    return (
        *(request.id, request.environment, request.status.value, int(request.status.is_open)),
        *(migrations.stamp(request.created_at), request.model_dump_json()),
    )


def _decode(model: type[R], text: str) -> R:
    return model.model_validate_json(text)


def _step_row(step: Step) -> tuple[str, int, str, str, str]:
    return (step.run_id, step.index, step.component, step.status.value, step.model_dump_json())
