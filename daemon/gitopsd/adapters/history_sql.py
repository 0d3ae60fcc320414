"""The statements that page through and prune runs, steps and events, for both SQL stores.

Lists are read a page at a time, with `LIMIT` and a position (keyset pagination: the last
run's creation time and id, the last step's index, the last event's id), so a page costs the
same however long the history is, and a run that starts between two pages never shifts them.
Pruning deletes a bounded number of rows per statement, in a short transaction of its own, so
the API and the workers never wait long for the write lock (see `runtime.service.retention`).

Written with `?` placeholders, in the SQL SQLite and PostgreSQL share (row values, LIMIT in a
subquery); the PostgreSQL store passes each through `migrations.for_postgresql`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from gitopsd.adapters import migrations

# runs, newest first, after the position (created_at, id) of the previous page's last one
RUNS_AFTER = "(created_at < ? OR (created_at = ? AND id < ?))"
COMPONENTS_PAGE = (
    "SELECT record FROM components WHERE environment = ? AND name > ? ORDER BY name LIMIT ?"
)
STEPS_PAGE = (
    "SELECT record FROM steps WHERE run_id = ? AND step_index > ? ORDER BY step_index LIMIT ?"
)

# The finished runs of one environment that retention may delete, oldest first: created
# before a time, or older than its newest `keep` runs. (params: env, before, env, keep, limit)
PRUNABLE_RUNS = (
    "SELECT id FROM runs WHERE environment = ? AND is_finished = 1 AND (created_at < ?"
    " OR (created_at, id) <= (SELECT created_at, id FROM runs WHERE environment = ?"
    " ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?))"
    " ORDER BY created_at, id LIMIT ?"
)


def delete_steps_of(count: int) -> str:
    """Delete at most N steps of `count` runs (params: the run ids, then N)."""
    marks = ", ".join("?" for _ in range(count))
    picked = f"SELECT run_id, step_index FROM steps WHERE run_id IN ({marks}) LIMIT ?"  # noqa: S608 - placeholders only
    return f"DELETE FROM steps WHERE (run_id, step_index) IN ({picked})"  # noqa: S608


def delete_runs_without_steps(count: int) -> str:
    """Delete those of `count` runs (params: their ids) that have no step left."""
    marks = ", ".join("?" for _ in range(count))
    return (
        f"DELETE FROM runs WHERE id IN ({marks})"  # noqa: S608 - placeholders only
        " AND NOT EXISTS (SELECT 1 FROM steps WHERE steps.run_id = runs.id)"
    )


# The events of one environment (or of none) that retention may delete, at most N: at or
# below an id (what the outbox has delivered), and older than a time or than the newest
# `keep`. (params: [env,] up_to, before, [env,] keep, N)
_PRUNE_EVENTS = (
    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {scope} AND id <= ?"
    " AND (at < ? OR id <= (SELECT id FROM events WHERE {scope}"
    " ORDER BY id DESC LIMIT 1 OFFSET ?)) ORDER BY id LIMIT ?)"
)
PRUNE_EVENTS = _PRUNE_EVENTS.format(scope="environment = ?")
PRUNE_EVENTS_WITHOUT_ENVIRONMENT = _PRUNE_EVENTS.format(scope="environment IS NULL")

# every environment with runs or events (None: the events of no environment)
HISTORY_SCOPES = (
    "SELECT DISTINCT environment FROM runs UNION SELECT DISTINCT environment FROM events"
)


def runs_page(
    filters: Mapping[str, str | None], before: tuple[datetime, str] | None
) -> tuple[str, list[object]]:
    """The runs whose columns equal `filters` (those set: environment, status, action),
    after position `before` if given, newest first (params, then the LIMIT). The columns are
    literal names of this module's callers; every value is a bound parameter."""
    where, params = migrations.where(filters)
    if before is not None:
        created = migrations.stamp(before[0])
        where += (" AND " if where else " WHERE ") + RUNS_AFTER
        params += [created, created, before[1]]
    sql = f"SELECT record FROM runs{where} ORDER BY created_at DESC, id DESC LIMIT ?"  # noqa: S608
    return sql, params


def prune_events(
    environment: str | None, before: datetime, keep: int, up_to: int, limit: int
) -> tuple[str, list[object]]:
    """`PRUNE_EVENTS` (or its variant for events of no environment) and its parameters."""
    stamp = migrations.stamp(before)
    if environment is None:
        return PRUNE_EVENTS_WITHOUT_ENVIRONMENT, [up_to, stamp, keep, limit]
    return PRUNE_EVENTS, [environment, up_to, stamp, environment, keep, limit]
