"""The durable state store on PostgreSQL: the state several daemons and hosts share.

It implements the engine's `StateStore` port with the SQLite store's semantics and tables (the
same `migrations`, in PostgreSQL's dialect), so `status`, `runs`, the CLI and the daemon work
the same against either; what only a shared store needs lives here too:

- a connection pool (psycopg_pool) that checks a connection before lending it, so the first
  use after a server restart gets a fresh connection instead of a dead one, and waits (up to
  `timeout`) for the server to come back rather than failing at once;
- a write that fails on a broken connection is tried once more on a fresh one when that is
  safe: when its transaction never reached COMMIT, or when repeating it changes nothing (an
  upsert, a delete); an event append or an approval whose COMMIT was lost is not repeated;
- fencing: a store `fenced(epoch)` checks, inside every write's transaction, that `epoch` is
  still the leader's (`SELECT ... FOR SHARE` on the leadership row, which an election's
  update must wait for), and raises `FencedError` otherwise, so a deposed leader that wakes up
  records nothing. `fenced(0)` refuses every such write (a standby); an unfenced store (the
  CLI) writes unconditionally and relies on the per-environment lease, as with SQLite;
- event ids: appends take a transaction-scoped advisory lock, so ids become visible in the
  order they were given (a consumer reading "events after id N" never skips a late commit).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from gitopsd.adapters import history_sql, migrations
from gitopsd.adapters.urls import redacted
from gitopsd.engine.ports import FencedError, OnFenced
from gitopsd.errors import StoreError, StoreUnavailableError
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

R = TypeVar("R", bound=Record)
T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]


LOCK_SPACE = 0x6769746F  # "gito": the first key of every advisory lock gitopsd takes
MIGRATION_LOCK = 1
EVENTS_LOCK = 2
LEADER_LOCK = 3
LEADERSHIP_ROW = "gitopsd"
SCHEMES = ("postgresql://", "postgres://")
# gitopsd's transactions are a few statements sent one after the other. One left open for
# this long is a frozen process's (`docker pause`, a stalled VM, Ctrl-Z on a command): its
# locks (the leadership row a fenced write holds shared, the rows it wrote) would hold off
# the next leader's election and every writer of those rows for as long as the freeze lasts.
# The server ends such a session; the process, when it wakes, finds its write failed. The
# default of `gitopsd serve`'s leader_timeout, which it gives instead when set.
IDLE_TRANSACTION_TIMEOUT = 10.0
# how a session's end shows: the connection or server gone, or ended for `IDLE_TRANSACTION_TIMEOUT`
SESSION_LOST = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout)


def connection_options(*, application: str, keepalive: float = 10.0) -> dict[str, Any]:
    """libpq options of every connection: a name in pg_stat_activity, a bounded connect, TCP
    keepalives (an idle connection to a vanished server fails in ~2 x `keepalive` seconds) and
    a TCP user timeout (so does one waiting for an answer, instead of retransmitting for many
    minutes until the kernel gives up)."""
    idle = max(1, round(keepalive))
    return {
        "application_name": application,
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": max(1, idle // 3),
        "keepalives_count": 3,
        "tcp_user_timeout": idle * 1000,
    }


def session_timeout(name: str, seconds: float) -> str:
    """libpq's `options` setting the server's `<name>_session_timeout` for the session:
    `idle` (the election's session) or `idle_in_transaction` (the store's)."""
    return f"-c {name}_session_timeout={max(1, round(seconds * 1000))}"


class PostgresStore:
    """A `StateStore` in a PostgreSQL database, safe to share between threads, processes and
    hosts. `close()` once no thread uses it any more (views made by `fenced` share its pool)."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 10,
        timeout: float = 30.0,
        idle_transaction_timeout: float = IDLE_TRANSACTION_TIMEOUT,
    ) -> None:
        """`idle_transaction_timeout`: seconds the server lets a session of this store sit
        inside a transaction without a statement before it ends the session (see
        `IDLE_TRANSACTION_TIMEOUT`); `gitopsd serve` gives its `leader_timeout`."""
        if not url.startswith(SCHEMES):
            raise StoreError(f"bad state URL {redacted(url)!r}: use postgresql://user@host/db")
        self._url = url
        self._local = threading.local()  # the thread's transaction: connection and depth
        self._epoch: int | None = None
        self._on_fenced: OnFenced | None = None
        self._migrate()
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            kwargs={
                "autocommit": True,
                **connection_options(application="gitopsd"),
                "options": session_timeout("idle_in_transaction", idle_transaction_timeout),
            },
            min_size=1,
            max_size=max_connections,
            timeout=timeout,
            check=ConnectionPool.check_connection,
            name="gitopsd-state",
            open=False,
        )
        self._pool.open()

    @classmethod
    def from_url(
        cls, url: str, *, idle_transaction_timeout: float = IDLE_TRANSACTION_TIMEOUT
    ) -> PostgresStore:
        return cls(url, idle_transaction_timeout=idle_transaction_timeout)

    @property
    def url(self) -> str:
        return self._url

    def fencing(self) -> PostgresStore:
        """The store itself: it is shared, and fences (engine.ports.Fencing)."""
        return self

    def fenced(self, epoch: int, *, on_fenced: OnFenced | None = None) -> PostgresStore:
        """A view of this store whose run, step, state, lease and event writes succeed only
        while `epoch` is the leader's (0: never); `on_fenced` hears of each one refused. It
        shares the pool; close the original."""
        view = copy.copy(self)
        view._epoch, view._on_fenced = epoch, on_fenced
        return view

    def close(self) -> None:
        self._pool.close(timeout=5)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all; nested blocks are savepoints."""
        held: Connection | None = getattr(self._local, "connection", None)
        if held is not None:
            with held.transaction():
                yield
            return
        try:
            with self._pool.connection() as connection, connection.transaction():
                self._local.connection, self._local.fence_checked = connection, False
                try:
                    yield
                finally:
                    self._local.connection, self._local.fence_checked = None, False
        except (*SESSION_LOST, PoolTimeout) as error:
            raise self._unusable(error) from error

    # environments

    def get_environment(self, name: str) -> EnvironmentState | None:
        return self._one(EnvironmentState, "SELECT record FROM environments WHERE name = %s", name)

    def list_environments(self) -> list[EnvironmentState]:
        return self._all(EnvironmentState, "SELECT record FROM environments ORDER BY name")

    def save_environment(self, state: EnvironmentState) -> None:
        row = (
            state.name,
            state.status.value,
            migrations.stamp(state.updated_at),
            state.model_dump_json(),
        )
        self._execute(_UPSERT_ENVIRONMENT, row)

    # the environments' verified holds

    def list_holds(self, environment: str, *, newest: int | None = None) -> list[VerifiedHold]:
        return migrations.holds_of(self._rows(_LIST_HOLDS, (environment, newest)))  # NULL: all

    def add_hold(self, environment: str, hold: VerifiedHold, *, keep: int) -> None:
        row = migrations.hold_row(environment, hold)

        def add(connection: Connection) -> None:
            connection.execute(_INSERT_HOLD, row)
            connection.execute(_FORGET_OLD_HOLDS, (environment, environment, keep))

        # not repeated after a lost COMMIT: a second insert would add the hold twice
        self._write(add, idempotent=False, atomic=True)

    def end_hold(self, environment: str, *, at: datetime) -> None:
        self._execute(_END_HOLD, (migrations.stamp(at), environment))

    # components

    def get_component(self, environment: str, name: str) -> ComponentState | None:
        sql = "SELECT record FROM components WHERE environment = %s AND name = %s"
        return self._one(ComponentState, sql, environment, name)

    def list_components(
        self, environment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ComponentState]:
        first = "" if after is None else after  # every name is longer: from the first
        return self._all(ComponentState, _COMPONENTS_PAGE, environment, first, limit)

    def component_names(self, environment: str) -> list[str]:
        sql = "SELECT name FROM components WHERE environment = %s ORDER BY name"
        return [name for (name,) in self._rows(sql, (environment,))]

    def save_component(self, state: ComponentState) -> None:
        self._execute(_UPSERT_COMPONENT, _component_row(state))

    def save_components(self, states: Sequence[ComponentState]) -> None:
        rows = [_component_row(state) for state in states]
        self._write(
            lambda connection: connection.cursor().executemany(_UPSERT_COMPONENT, rows),
            atomic=True,
        )

    def delete_component(self, environment: str, name: str) -> None:
        sql = "DELETE FROM components WHERE environment = %s AND name = %s"
        self._execute(sql, (environment, name))

    # runs and their steps

    def save_run(self, run: Run) -> None:
        row = (run.id, run.environment, run.action.value, run.status.value)
        finished = int(run.status.is_finished)
        self._execute(
            _UPSERT_RUN, (*row, finished, migrations.stamp(run.created_at), run.model_dump_json())
        )

    def get_run(self, run_id: str) -> Run | None:
        return self._one(Run, "SELECT record FROM runs WHERE id = %s", run_id)

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
        return self._all(Run, migrations.for_postgresql(sql), *params, limit)

    def unfinished_runs(self, environment: str | None = None) -> list[Run]:
        where, params = _filters({"is_finished": 0, "environment": environment})
        return self._all(Run, f"SELECT record FROM runs{where} ORDER BY created_at, id", *params)  # noqa: S608

    def save_step(self, step: Step) -> None:
        self._execute(_UPSERT_STEP, _step_row(step))

    def save_steps(self, steps: Iterable[Step]) -> None:
        rows = [_step_row(step) for step in steps]
        self._write(
            lambda connection: connection.cursor().executemany(_UPSERT_STEP, rows), atomic=True
        )

    def list_steps(
        self, run_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        first = -1 if after is None else after  # indexes start at 0: from the first
        return self._all(Step, _STEPS_PAGE, run_id, first, limit)  # LIMIT NULL: no limit

    def prune_runs(
        self, environment: str, *, created_before: datetime, keep: int, limit: int
    ) -> int:
        params = (environment, migrations.stamp(created_before), environment, keep, limit)

        def prune(connection: Connection) -> int:
            chosen = [row[0] for row in connection.execute(_PRUNABLE_RUNS, params)]
            if not chosen:
                return 0
            steps = migrations.for_postgresql(history_sql.delete_steps_of(len(chosen)))
            deleted = connection.execute(steps, (*chosen, limit)).rowcount
            if deleted < limit:
                left = chosen[: limit - deleted]
                runs = migrations.for_postgresql(history_sql.delete_runs_without_steps(len(left)))
                deleted += connection.execute(runs, left).rowcount
            return int(deleted)

        return self._write(prune, atomic=True)

    def history_scopes(self) -> list[str | None]:
        return [environment for (environment,) in self._rows(history_sql.HISTORY_SCOPES, ())]

    # the audit trail: append-only; ids visible in order (see the module docstring)

    def append_event(self, event: Event) -> Event:
        row = (migrations.stamp(event.at), event.environment, event.run_id, event.kind)
        params = (*row, event.model_dump_json(exclude={"id"}))

        def append(connection: Connection) -> int:
            connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, EVENTS_LOCK))
            return int(_first(connection.execute(_INSERT_EVENT, params).fetchone()))

        # atomic: the lock must be held until the insert commits, even for an unfenced store
        # (the CLI's), or ids could become visible out of order
        appended = self._write(append, idempotent=False, atomic=True)
        return event.model_copy(update={"id": appended})

    def list_events(
        self,
        environment: str | None = None,
        *,
        run_id: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[Event]:
        where, params = _filters({"environment": environment, "run_id": run_id})
        if before is not None:
            where, params = f"{where} AND id < %s" if where else " WHERE id < %s", [*params, before]
        sql = f"SELECT id, record FROM events{where} ORDER BY id DESC LIMIT %s"  # noqa: S608
        return _events(self._rows(sql, (*params, limit)))

    def list_events_after(self, after_id: int, *, limit: int) -> list[Event]:
        """Events with an id above `after_id`, oldest first, at most `limit`."""
        sql = "SELECT id, record FROM events WHERE id > %s ORDER BY id LIMIT %s"
        return _events(self._rows(sql, (after_id, limit)))

    def prune_events(
        self, environment: str | None, *, before: datetime, keep: int, up_to: int, limit: int
    ) -> int:
        sql, params = history_sql.prune_events(environment, before, keep, up_to, limit)
        statement = migrations.for_postgresql(sql)
        return int(self._write(lambda c: c.execute(statement, params).rowcount, atomic=True))

    def get_cursor(self, name: str) -> int | None:
        rows = self._rows("SELECT value FROM cursors WHERE name = %s", (name,))
        return int(rows[0][0]) if rows else None

    def save_cursor(self, name: str, value: int) -> None:
        self._execute(_UPSERT_CURSOR, (name, value))

    # approvals: people's acts, valid whoever records them, so never fenced

    def add_approval(self, approval: ApprovalRecord) -> bool:
        row = (
            approval.environment,
            approval.revision,
            approval.approver,
            migrations.stamp(approval.at),
        )
        params = (*row, approval.model_dump_json())

        def insert(connection: Connection) -> bool:
            return connection.execute(_INSERT_APPROVAL, params).rowcount == 1

        return self._write(insert, idempotent=False, fenced=False)

    def replace_approval(self, approval: ApprovalRecord) -> None:
        row = (approval.environment, approval.revision, approval.approver)
        params = (*row, migrations.stamp(approval.at), approval.model_dump_json())
        self._write(lambda connection: connection.execute(_UPSERT_APPROVAL, params), fenced=False)

    def list_approvals(self, environment: str, revision: str) -> list[ApprovalRecord]:
        sql = "SELECT record FROM approvals WHERE environment = %s AND revision = %s ORDER BY at"
        return self._all(ApprovalRecord, sql, environment, revision)

    # saved plans: a claim is one conditional UPDATE, so of two racing applies one wins

    def save_plan(self, plan: SavedPlan) -> None:
        self._execute(_UPSERT_PLAN, migrations.plan_row(plan))

    def get_plan(self, plan_id: str) -> SavedPlan | None:
        return self._one(SavedPlan, "SELECT record FROM plans WHERE id = %s", plan_id)

    def claim_plan(self, plan_id: str, *, at: datetime, run_id: str | None) -> bool:
        plan = self.get_plan(plan_id)
        if plan is None or plan.applied_at is not None:
            return False
        used = plan.model_copy(update={"applied_at": at, "applied_by": run_id})
        params = (migrations.stamp(at), used.model_dump_json(), plan_id)

        def claim(connection: Connection) -> bool:
            return connection.execute(_CLAIM_PLAN, params).rowcount == 1

        # not repeated after a lost COMMIT: the repeat would say "claimed already" and
        # refuse an apply that had in fact won; refusing without a retry is the same answer
        return self._write(claim, idempotent=False)

    # requests for work

    def save_request(self, request: Request) -> None:
        row = (request.id, request.environment, request.status.value)
        opened = int(request.status.is_open)
        stamp = migrations.stamp(request.created_at)
        self._execute(_UPSERT_REQUEST, (*row, opened, stamp, request.model_dump_json()))

    def get_request(self, request_id: str) -> Request | None:
        return self._one(Request, "SELECT record FROM requests WHERE id = %s", request_id)

    def list_requests(
        self, environment: str | None = None, *, open_only: bool = False, limit: int = 1000
    ) -> list[Request]:
        where, params = _filters({"environment": environment, "is_open": 1 if open_only else None})
        sql = f"SELECT record FROM requests{where} ORDER BY created_at, id LIMIT %s"  # noqa: S608
        return self._all(Request, sql, *params, limit)

    def forget_closed_requests(self, environment: str, *, keep: int) -> None:
        self._execute(_FORGET_CLOSED_REQUESTS, (environment, environment, keep))

    # the one-run-per-environment lease: one statement decides, under the row's lock

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
        expires = migrations.stamp(now + timedelta(seconds=ttl))
        params = (environment, holder, expires, migrations.stamp(now), holder, takeover)

        def take(connection: Connection) -> bool:
            return connection.execute(_TAKE_LEASE, params).fetchone() is not None

        return self._write(take)  # repeating it after a lost COMMIT gives the same answer

    def release_lease(self, environment: str, holder: str) -> None:
        sql = "DELETE FROM leases WHERE environment = %s AND holder = %s"
        self._execute(sql, (environment, holder))

    def lease_holder(self, environment: str, *, now: datetime) -> str | None:
        sql = "SELECT holder, expires_at FROM leases WHERE environment = %s"
        rows = self._rows(sql, (environment,))
        if not rows or datetime.fromisoformat(rows[0][1]) <= migrations.utc(now):
            return None
        return str(rows[0][0])

    # the process groups of running drivers: recorded whoever leads (a deposed leader's
    # drivers run all the same, and must be found)

    def save_driver_process(self, process: DriverProcess) -> None:
        row = (process.host, process.pid, process.environment)
        params = (*row, migrations.stamp(process.recorded_at), process.model_dump_json())
        self._write(
            lambda connection: connection.execute(_UPSERT_DRIVER_PROCESS, params), fenced=False
        )

    def list_driver_processes(self, environment: str) -> list[DriverProcess]:
        sql = (
            "SELECT record FROM driver_processes WHERE environment = %s"
            " ORDER BY recorded_at, host, pid"
        )
        return self._all(DriverProcess, sql, environment)

    def delete_driver_process(self, host: str, pid: int) -> None:
        sql = "DELETE FROM driver_processes WHERE host = %s AND pid = %s"
        self._write(lambda connection: connection.execute(sql, (host, pid)), fenced=False)

    def forget_driver_processes(self, run_id: str) -> None:
        sql = "DELETE FROM driver_processes WHERE record::jsonb ->> 'run_id' = %s"
        self._write(lambda connection: connection.execute(sql, (run_id,)), fenced=False)

    # plumbing: reads

    def _one(self, model: type[R], sql: str, *params: object) -> R | None:
        found = self._all(model, sql, *params)
        return found[0] if found else None

    def _all(self, model: type[R], sql: str, *params: object) -> list[R]:
        return [model.model_validate_json(record) for (record,) in self._rows(sql, params)]

    def _rows(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        held: Connection | None = getattr(self._local, "connection", None)
        if held is not None:  # inside a transaction: see its own writes
            return held.execute(sql, params).fetchall()
        return self._retrying(lambda c: c.execute(sql, params).fetchall(), transaction=False)

    # plumbing: writes

    def _execute(self, sql: str, params: Sequence[object]) -> None:
        """One idempotent write (an upsert, a delete), fenced."""
        self._write(lambda connection: connection.execute(sql, params))

    def _write(
        self,
        work: Callable[[Connection], T],
        *,
        idempotent: bool = True,
        fenced: bool = True,
        atomic: bool = False,
    ) -> T:
        """`work` inside the thread's transaction, or in a transaction of its own; only an
        unfenced write that is one statement (not `atomic`) runs alone, in autocommit mode.
        Fenced writes check the epoch first."""
        checked = self._checked(work) if fenced and self._epoch is not None else work
        held: Connection | None = getattr(self._local, "connection", None)
        if held is not None:
            return checked(held)
        alone = checked is work and not atomic
        return self._retrying(checked, transaction=not alone, idempotent=idempotent)

    def _checked(self, work: Callable[[Connection], T]) -> Callable[[Connection], T]:
        def fenced_work(connection: Connection) -> T:
            inside = getattr(self._local, "connection", None) is connection
            if not (inside and self._local.fence_checked):
                self._check_epoch(connection)
            return work(connection)

        return fenced_work

    def _check_epoch(self, connection: Connection) -> None:
        """Hold the leadership row shared until the transaction ends: an election (an update
        of it) waits for this write to commit, and this write refuses a newer epoch."""
        sql = "SELECT epoch, holder FROM leadership WHERE name = %s FOR SHARE"
        row = connection.execute(sql, (LEADERSHIP_ROW,)).fetchone()
        current, leader = (int(row[0]), str(row[1])) if row else (0, "nobody")
        if self._epoch == 0 or current != self._epoch:
            error = FencedError(
                f"fenced: this gitopsd writes as leader epoch {self._epoch}, but epoch "
                f"{current} ({leader}) leads now; nothing was recorded"
            )
            if self._on_fenced is not None:
                self._on_fenced(error)
            raise error
        if getattr(self._local, "connection", None) is connection:
            self._local.fence_checked = True

    def _retrying(
        self, work: Callable[[Connection], T], *, transaction: bool, idempotent: bool = True
    ) -> T:
        """Run `work` on a pooled connection; once more on a fresh one if the connection broke
        and repeating is safe (the transaction never reached COMMIT, or `idempotent`)."""
        for attempt in (1, 2):
            connection: Connection | None = None
            committing = False
            try:
                with self._pool.connection() as connection:
                    if not transaction:
                        return work(connection)
                    with connection.transaction():
                        result = work(connection)
                        committing = True
                    return result
            except SESSION_LOST as error:
                broken = connection is not None and connection.broken
                uncommitted = transaction and not committing
                if attempt == 2 or not broken or not (uncommitted or idempotent):
                    raise self._unusable(error) from error
            except PoolTimeout as error:
                raise self._unusable(error) from error
        raise AssertionError("unreachable")

    def _unusable(self, error: Exception) -> StoreError:
        return StoreUnavailableError(f"the state database {redacted(self._url)} failed: {error}")

    def _migrate(self) -> None:
        options = connection_options(application="gitopsd-migrate")
        try:
            with psycopg.connect(self._url, autocommit=True, **options) as connection:
                migrate(connection)
        except psycopg.Error as error:
            raise StoreError(
                f"cannot open state database {redacted(self._url)}: {error}".strip()
            ) from error


def migrate(connection: Connection) -> None:
    """Bring the schema to `migrations.LATEST`, one transaction per migration, holding an
    advisory lock so that daemons starting at once apply each migration exactly once."""
    connection.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_SPACE, MIGRATION_LOCK))
    try:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        found = int(_first(connection.execute(_RECORDED).fetchone()))
        if found > migrations.LATEST:
            raise StoreError(
                f"the state database is at schema version {found}; this gitopsd knows up to"
                f" {migrations.LATEST}; upgrade gitopsd"
            )
        for migration in (m for m in migrations.MIGRATIONS if m.version > found):
            with connection.transaction():
                for statement in migration.statements:
                    connection.execute(migrations.for_postgresql(statement))
                if migration.data is not None:
                    migration.data(functools.partial(_execute, connection))
                connection.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (migration.version, migrations.stamp(datetime.now().astimezone())),
                )
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, MIGRATION_LOCK))


def _execute(connection: Connection, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    """A migration's data statement (migrations.Execute) in PostgreSQL's dialect."""
    cursor = connection.execute(migrations.for_postgresql(sql), params)
    return cursor.fetchall() if cursor.description is not None else []


def _component_row(state: ComponentState) -> tuple[str, ...]:
    return (
        *(state.environment, state.name, state.status.value, state.drift.value),
        *(migrations.stamp(state.updated_at), state.model_dump_json()),
    )


def _first(row: tuple[Any, ...] | None) -> Any:
    if row is None:
        raise StoreError("the state database returned no row where one was expected")
    return row[0]


def _filters(filters: dict[str, object]) -> tuple[str, list[object]]:
    return migrations.where(filters, mark="%s")


def _events(rows: list[tuple[Any, ...]]) -> list[Event]:
    return [
        Event.model_validate_json(record).model_copy(update={"id": int(id_)})
        for id_, record in rows
    ]


_RECORDED = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
_UPSERT_ENVIRONMENT = migrations.for_postgresql(migrations.UPSERT_ENVIRONMENT)
_UPSERT_COMPONENT = migrations.for_postgresql(migrations.UPSERT_COMPONENT)
_UPSERT_RUN = migrations.for_postgresql(migrations.UPSERT_RUN)
_UPSERT_STEP = migrations.for_postgresql(migrations.UPSERT_STEP)
_UPSERT_CURSOR = migrations.for_postgresql(migrations.UPSERT_CURSOR)
_UPSERT_REQUEST = migrations.for_postgresql(migrations.UPSERT_REQUEST)
_FORGET_CLOSED_REQUESTS = migrations.for_postgresql(migrations.FORGET_CLOSED_REQUESTS)
_UPSERT_DRIVER_PROCESS = migrations.for_postgresql(migrations.UPSERT_DRIVER_PROCESS)
_INSERT_APPROVAL = migrations.for_postgresql(migrations.INSERT_APPROVAL)
_UPSERT_APPROVAL = migrations.for_postgresql(migrations.UPSERT_APPROVAL)
_UPSERT_PLAN = migrations.for_postgresql(migrations.UPSERT_PLAN)
_INSERT_HOLD = migrations.for_postgresql(migrations.INSERT_HOLD)
_LIST_HOLDS = migrations.for_postgresql(migrations.LIST_HOLDS)
_END_HOLD = migrations.for_postgresql(migrations.END_HOLD)
_FORGET_OLD_HOLDS = migrations.for_postgresql(migrations.FORGET_OLD_HOLDS)
_CLAIM_PLAN = migrations.for_postgresql(migrations.CLAIM_PLAN)
_COMPONENTS_PAGE = migrations.for_postgresql(history_sql.COMPONENTS_PAGE)
_STEPS_PAGE = migrations.for_postgresql(history_sql.STEPS_PAGE)
_PRUNABLE_RUNS = migrations.for_postgresql(history_sql.PRUNABLE_RUNS)
_INSERT_EVENT = (
    "INSERT INTO events (at, environment, run_id, kind, record) VALUES (%s, %s, %s, %s, %s)"
    " RETURNING id"
)
_TAKE_LEASE = (
    "INSERT INTO leases (environment, holder, expires_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (environment) DO UPDATE"
    " SET holder = excluded.holder, expires_at = excluded.expires_at"
    " WHERE leases.expires_at <= %s OR leases.holder = %s OR leases.holder = %s"
    " RETURNING holder"
)


def _step_row(step: Step) -> tuple[str, int, str, str, str]:
    return (step.run_id, step.index, step.component, step.status.value, step.model_dump_json())
