"""The state database's schema, as an ordered list of migrations, and the runner that applies it.

Every command and the daemon open the state store before they load, plan or execute anything,
and opening it brings the schema up to date here. Each migration runs in its own transaction and
is recorded in `schema_migrations`, so a crash mid-way leaves a database at the previous
version, and reopening (or two processes opening at once) applies each migration exactly once.

The SQL is deliberately plain (TEXT columns, ISO-8601 UTC timestamps that sort as text, JSON
records in TEXT) so the PostgreSQL store keeps the same tables and version numbers: it runs the
same migrations through `for_postgresql`, which rewrites the little that differs (an
autoincrement key, `?` placeholders), under an advisory lock (see `postgres_store`). Columns
hold only what is queried or ordered by; the whole record rides along as JSON in `record`, so a
new field on a record needs no migration. Never edit a released migration: append a new one.
The upserts that write whole rows live here too, since they spell out the tables' columns.

A migration that moves data SQL cannot move the same way in both dialects (their JSON
functions differ) does it in Python (`Migration.data`), in the migration's transaction, through
an `Execute` each store gives it: still once, still all or nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from gitopsd.model.state import SavedPlan, VerifiedHold

# One statement of a migration's data step, in SQLite's spelling (`?` placeholders; each store
# translates), and the rows it returned (none for a write).
Execute = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Migration:
    """`statements`, then `data` (None: nothing to move), in one transaction."""

    version: int
    description: str
    statements: tuple[str, ...]
    data: Callable[[Execute], None] | None = None


def _move_holds(execute: Execute) -> None:
    """Migration 9: each environment record's holds become rows of `holds`, oldest first (the
    order of their ids), and `holds` and `holds_recorded` leave the record: the record model no
    longer has them and refuses unknown keys. A record written before holds were kept
    (`holds_recorded` false or absent) gets the holds its runs imply, derived here once."""
    for name, text in execute("SELECT name, record FROM environments ORDER BY name", ()):
        record = json.loads(text)
        listed = record.pop("holds", [])
        if record.pop("holds_recorded", False):
            holds = [_Hold(h["revision"], _moment(h["since"]), _until(h)) for h in listed]
        else:
            holds = _holds_from_runs(execute, name)
        for hold in holds:
            until = None if hold.until is None else stamp(hold.until)
            execute(INSERT_HOLD, (name, hold.revision, stamp(hold.since), until))
        rewritten = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        execute("UPDATE environments SET record = ? WHERE name = ?", (rewritten, name))


class _Hold(NamedTuple):
    revision: str
    since: datetime
    until: datetime | None


_DERIVED_FROM_RUNS = 5000  # the newest runs of an environment its holds were derived from
_DERIVED_HOLDS = 1000  # the holds kept (runtime.records.promotion_records.KEEP_HOLDS)


def _holds_from_runs(execute: Execute, environment: str) -> list[_Hold]:
    """The holds `environment`'s apply runs imply, replayed as gitopsd derived them for such a
    record until this migration: a started apply of another revision ends the open hold, one
    that succeeded starts a hold of its revision unless that one is still held. Raw JSON, not
    the record models: a later model must not change what this migration did."""
    sql = "SELECT record FROM runs WHERE environment = ? ORDER BY created_at DESC, id DESC LIMIT ?"
    runs = [json.loads(text) for (text,) in execute(sql, (environment, _DERIVED_FROM_RUNS))]
    applies = [r for r in runs if r.get("action") == "apply" and r.get("started_at")]
    found: list[_Hold] = []
    for run in sorted(applies, key=lambda r: (_moment(r["started_at"]), r["id"])):
        current = found[-1] if found and found[-1].until is None else None
        if current is not None and current.revision != run["revision"]:
            found[-1] = current._replace(until=_moment(run["started_at"]))
            current = None
        if run.get("status") == "succeeded" and run.get("finished_at") and current is None:
            found.append(_Hold(run["revision"], _moment(run["finished_at"]), None))
    return found[-_DERIVED_HOLDS:]


def _moment(text: str) -> datetime:
    """A time as a record's JSON holds it (`2024-05-01T12:00:00Z`)."""
    return datetime.fromisoformat(text)


def _until(hold: Mapping[str, Any]) -> datetime | None:
    return _moment(hold["until"]) if hold.get("until") else None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="environments, components, runs, steps, events and leases",
        statements=(
            """CREATE TABLE environments (
                name TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
            """CREATE TABLE components (
                environment TEXT NOT NULL,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                drift TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (environment, name)
            )""",
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                environment TEXT NOT NULL,
                action TEXT NOT NULL,
                status TEXT NOT NULL,
                is_finished INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX runs_by_created ON runs (created_at, id)",
            "CREATE INDEX runs_by_environment ON runs (environment, created_at, id)",
            "CREATE INDEX runs_unfinished ON runs (is_finished, created_at, id)",
            """CREATE TABLE steps (
                run_id TEXT NOT NULL,
                step_index INTEGER NOT NULL,
                component TEXT NOT NULL,
                status TEXT NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (run_id, step_index)
            )""",
            """CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                environment TEXT,
                run_id TEXT,
                kind TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX events_by_environment ON events (environment, id)",
            "CREATE INDEX events_by_run ON events (run_id, id)",
            """CREATE TABLE leases (
                environment TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=2,
        description="approvals of a revision for an environment",
        statements=(
            """CREATE TABLE approvals (
                environment TEXT NOT NULL,
                revision TEXT NOT NULL,
                approver TEXT NOT NULL,
                at TEXT NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (environment, revision, approver)
            )""",
        ),
    ),
    Migration(
        version=3,
        description="named cursors over the audit trail (how far a consumer has read)",
        statements=(
            """CREATE TABLE cursors (
                name TEXT PRIMARY KEY,
                value BIGINT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=4,
        description="the leader's epoch, which fences the writes of a deposed leader",
        statements=(
            """CREATE TABLE leadership (
                name TEXT PRIMARY KEY,
                epoch BIGINT NOT NULL,
                holder TEXT NOT NULL,
                elected_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=5,
        description="requests for work, recorded before anything acts on them",
        statements=(
            """CREATE TABLE requests (
                id TEXT PRIMARY KEY,
                environment TEXT NOT NULL,
                status TEXT NOT NULL,
                is_open INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX requests_open ON requests (is_open, created_at, id)",
            "CREATE INDEX requests_by_environment ON requests (environment, created_at, id)",
        ),
    ),
    Migration(
        version=6,
        description="saved plans: what `plan --save` decided, to be applied once",
        statements=(
            """CREATE TABLE plans (
                id TEXT PRIMARY KEY,
                environment TEXT NOT NULL,
                created_at TEXT NOT NULL,
                applied_at TEXT,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX plans_by_environment ON plans (environment, created_at, id)",
        ),
    ),
    Migration(
        version=7,
        description="the process group of each running driver, ended by whoever takes over",
        statements=(
            """CREATE TABLE driver_processes (
                host TEXT NOT NULL,
                pid BIGINT NOT NULL,
                environment TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (host, pid)
            )""",
            "CREATE INDEX driver_processes_by_environment"
            " ON driver_processes (environment, recorded_at)",
        ),
    ),
    Migration(
        version=8,
        description="events by environment and time, which retention prunes by age",
        statements=("CREATE INDEX events_by_environment_time ON events (environment, at, id)",),
    ),
    Migration(
        version=9,
        description="each environment's verified holds, a row each, out of its record",
        statements=(
            # every column a value (no JSON record: a hold is three values); the id keeps the
            # order holds were added in, the order they started in
            """CREATE TABLE holds (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                environment TEXT NOT NULL,
                revision TEXT NOT NULL,
                since TEXT NOT NULL,
                until TEXT
            )""",
            "CREATE INDEX holds_by_environment ON holds (environment, id)",
        ),
        data=_move_holds,
    ),
)

LATEST = MIGRATIONS[-1].version

# SQLite spellings and their PostgreSQL equivalents; the rest of the SQL is common to both.
_POSTGRESQL_SPELLINGS = (
    ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
)


def for_postgresql(statement: str) -> str:
    """`statement` in PostgreSQL's dialect: its own spellings, and `%s` placeholders for `?`
    (the statements here contain no `?` or `%` otherwise)."""
    for sqlite, postgresql in _POSTGRESQL_SPELLINGS:
        statement = statement.replace(sqlite, postgresql)
    return statement.replace("?", "%s")


# The statements that write whole rows, next to the tables whose columns they name.


def _upsert(table: str, key: tuple[str, ...], others: tuple[str, ...]) -> str:
    """An insert that overwrites the row with the same `key` (SQLite >= 3.24, PostgreSQL)."""
    columns = ", ".join((*key, *others))
    marks = ", ".join("?" for _ in (*key, *others))
    updates = ", ".join(f"{column} = excluded.{column}" for column in others)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 -- literal names only
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


UPSERT_ENVIRONMENT = _upsert("environments", ("name",), ("status", "updated_at", "record"))
UPSERT_COMPONENT = _upsert(
    "components", ("environment", "name"), ("status", "drift", "updated_at", "record")
)
UPSERT_RUN = _upsert(
    "runs",
    ("id",),
    ("environment", "action", "status", "is_finished", "created_at", "record"),
)
UPSERT_STEP = _upsert("steps", ("run_id", "step_index"), ("component", "status", "record"))
INSERT_APPROVAL = (
    "INSERT INTO approvals (environment, revision, approver, at, record) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (environment, revision, approver) DO NOTHING"
)
UPSERT_APPROVAL = _upsert("approvals", ("environment", "revision", "approver"), ("at", "record"))
UPSERT_LEASE = _upsert("leases", ("environment",), ("holder", "expires_at"))
UPSERT_CURSOR = _upsert("cursors", ("name",), ("value",))
# closed requests of one environment but the newest N (parameters: env, env, N): those at or
# before the (N+1)th newest, found by one row of the index. Each request's end runs it (three
# a commit in a chain of three environments); `id NOT IN (the newest N)` built a temporary
# table of up to N ids each time, a block of 85 KiB in the daemon's heap for SQLite's cache
# of it, beside the commit's other work (benchmarks/README.md, memory: heaptrack).
FORGET_CLOSED_REQUESTS = (
    "DELETE FROM requests WHERE environment = ? AND is_open = 0 AND (created_at, id) <="
    " (SELECT created_at, id FROM requests WHERE environment = ? AND is_open = 0"
    " ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?)"
)
UPSERT_REQUEST = _upsert(
    "requests", ("id",), ("environment", "status", "is_open", "created_at", "record")
)
INSERT_HOLD = "INSERT INTO holds (environment, revision, since, until) VALUES (?, ?, ?, ?)"
# an environment's newest N holds, newest first (parameters: env, N; -1 in SQLite, NULL in
# PostgreSQL: all of them)
LIST_HOLDS = (
    "SELECT revision, since, until FROM holds WHERE environment = ? ORDER BY id DESC LIMIT ?"
)
# ends an environment's newest hold if it is still open (parameters: until, env)
END_HOLD = (
    "UPDATE holds SET until = ? WHERE until IS NULL AND id ="
    " (SELECT id FROM holds WHERE environment = ? ORDER BY id DESC LIMIT 1)"
)
# an environment's holds but the newest N (parameters: env, env, N): those at or before the
# (N+1)th newest, found by one row of the index, as FORGET_CLOSED_REQUESTS does
FORGET_OLD_HOLDS = (
    "DELETE FROM holds WHERE environment = ? AND id <="
    " (SELECT id FROM holds WHERE environment = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)
UPSERT_PLAN = _upsert("plans", ("id",), ("environment", "created_at", "applied_at", "record"))
# marks a plan used, only if no one used it first: the row count says who won
CLAIM_PLAN = "UPDATE plans SET applied_at = ?, record = ? WHERE id = ? AND applied_at IS NULL"
UPSERT_DRIVER_PROCESS = _upsert(
    "driver_processes", ("host", "pid"), ("environment", "recorded_at", "record")
)


# How values become columns, the same in both stores.


def utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the state store keeps UTC times")
    return moment.astimezone(UTC)


def stamp(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601 (`2024-05-01T12:00:00.000000+00:00`), so text order is time."""
    return utc(moment).isoformat(timespec="microseconds")


def plan_row(plan: SavedPlan) -> tuple[str | None, ...]:
    """The plans table's columns for `plan`, in `UPSERT_PLAN`'s order."""
    applied = stamp(plan.applied_at) if plan.applied_at else None
    return (plan.id, plan.environment, stamp(plan.created_at), applied, plan.model_dump_json())


def hold_row(environment: str, hold: VerifiedHold) -> tuple[str, str, str, str | None]:
    """The holds table's columns for `hold`, in `INSERT_HOLD`'s order."""
    until = stamp(hold.until) if hold.until else None
    return (environment, hold.revision, stamp(hold.since), until)


def holds_of(rows: Sequence[tuple[Any, ...]]) -> list[VerifiedHold]:
    """`LIST_HOLDS`'s rows (newest first) as holds, oldest first."""
    return [
        VerifiedHold(
            revision=revision,
            since=datetime.fromisoformat(since),
            until=datetime.fromisoformat(until) if until else None,
        )
        for revision, since, until in reversed(rows)
    ]


def where(filters: Mapping[str, object], *, mark: str = "?") -> tuple[str, list[object]]:
    """` WHERE a = ? AND b = ?` for the filters that are set (`mark`: the driver's placeholder,
    `%s` for PostgreSQL); the keys are literal columns, every value a bound parameter."""
    chosen = {column: value for column, value in filters.items() if value is not None}
    if not chosen:
        return "", []
    condition = " AND ".join(f"{column} = {mark}" for column in chosen)
    return " WHERE " + condition, list(chosen.values())


# the newest migration recorded, for a database opened to read only (which has the table)
RECORDED_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"


def recorded_version(connection: sqlite3.Connection) -> int:
    """The newest migration the database has recorded; 0 for a new database."""
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    row = connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def migrate(connection: sqlite3.Connection) -> None:
    """Apply every migration the database lacks, in order, each in its own transaction.

    The connection must be in autocommit mode (`isolation_level=None`) and outside a
    transaction. Call `recorded_version` first to refuse a database newer than `LATEST`.
    """
    if recorded_version(connection) >= LATEST:
        return
    for migration in MIGRATIONS:
        _apply(connection, migration)


def _apply(connection: sqlite3.Connection, migration: Migration) -> None:
    # BEGIN IMMEDIATE takes the write lock first, so the check below cannot race another
    # process opening the same database: whoever gets the lock second sees it recorded.
    connection.execute("BEGIN IMMEDIATE")
    try:
        if not _is_recorded(connection, migration.version):
            for statement in migration.statements:
                connection.execute(statement)
            if migration.data is not None:
                migration.data(lambda sql, params: connection.execute(sql, params).fetchall())
            connection.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, datetime.now(UTC).isoformat(timespec="microseconds")),
            )
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _is_recorded(connection: sqlite3.Connection, version: int) -> bool:
    row = connection.execute(
        "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
    ).fetchone()
    return row is not None
