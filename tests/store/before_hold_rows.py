"""A state database as gitopsd left it at schema version 8, before holds had rows of their own:
each environment's record carried its list of holds, or, written before holds were kept, none
(`holds_recorded` absent), to be derived from its runs. The SQLite and PostgreSQL store tests
write it through `execute` (SQLite's spelling) and open it with the current store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from gitopsd.adapters import migrations
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import (
    EnvironmentState,
    EnvironmentStatus,
    RunAction,
    RunStatus,
    Suspension,
    VerifiedHold,
)
from tests.store.contract import SHA_A, SHA_B, T0, at, run

VERSION = 8
Execute = Callable[[str, tuple[Any, ...]], object]

# the records as version 8 wrote them (pydantic's JSON: UTC times end in Z)
_DEV = {
    "name": "dev",
    "revision": SHA_B,
    "previous_revision": SHA_A,
    "status": "verified",
    "updated_at": "2024-05-01T12:00:09Z",
    "holds": [
        {
            "revision": SHA_A,
            "since": "2024-05-01T12:00:01.250000Z",
            "until": "2024-05-01T12:00:05Z",
        },
        {"revision": SHA_B, "since": "2024-05-01T12:00:06Z", "until": None},
    ],
    "holds_recorded": True,
    "pending_approval": None,
    "waiting": None,
    "suspension": {"reason": "incident ✓", "actor": "oncall", "since": "2024-05-01T12:00:08Z"},
}
_PROD = {"name": "prod", "status": "verified", "updated_at": "2024-05-01T12:01:00Z"}  # no holds
_QA = {"name": "qa", "updated_at": "2024-05-01T12:00:00Z", "holds": [], "holds_recorded": True}

# prod's runs, from which its holds are derived: A verified, a plan of B (no hold change), an
# apply of B that failed (A's hold ends when it starts), A verified again
_PROD_RUNS = [
    run("r1", env="prod", status=RunStatus.SUCCEEDED, started_at=at(1), finished_at=at(10)),
    run(
        "r2",
        env="prod",
        revision=SHA_B,
        action=RunAction.PLAN,
        status=RunStatus.SUCCEEDED,
        created_at=at(20),
        started_at=at(21),
        finished_at=at(22),
    ),
    run(
        "r3",
        env="prod",
        revision=SHA_B,
        status=RunStatus.FAILED,
        created_at=at(30),
        started_at=at(31),
        finished_at=at(40),
    ),
    run(
        "r4",
        env="prod",
        status=RunStatus.SUCCEEDED,
        created_at=at(50),
        started_at=at(51),
        finished_at=at(60),
    ),
]

# what the current store reads back
HOLDS = {
    "dev": [
        VerifiedHold(revision=SHA_A, since=at(1.25), until=at(5)),
        VerifiedHold(revision=SHA_B, since=at(6)),
    ],
    "prod": [
        VerifiedHold(revision=SHA_A, since=at(10), until=at(31)),
        VerifiedHold(revision=SHA_A, since=at(60)),
    ],
    "qa": [],
}
DEV = EnvironmentState(
    name="dev",
    revision=SHA_B,
    previous_revision=SHA_A,
    status=EnvironmentStatus.VERIFIED,
    updated_at=at(9),
    suspension=Suspension(reason="incident ✓", actor="oncall", since=at(8)),
)


def write(execute: Execute) -> None:
    """The schema up to version 8, its versions recorded, and the records above."""
    execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        (),
    )
    for migration in migrations.MIGRATIONS[:VERSION]:
        for statement in migration.statements:
            execute(statement, ())
        insert = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"
        execute(insert, (migration.version, "t"))
    for record in (_DEV, _PROD, _QA):
        text = json.dumps(record, ensure_ascii=False)
        row = (record["name"], record.get("status", "unknown"), "t", text)
        execute(migrations.UPSERT_ENVIRONMENT, row)
    for made in _PROD_RUNS:
        row = (made.id, made.environment, made.action.value, made.status.value, 1)
        created = migrations.stamp(made.created_at)
        execute(migrations.UPSERT_RUN, (*row, created, made.model_dump_json()))


def check_moved(store: StateStore, records: Sequence[str]) -> None:
    """What the current `store`, having opened the database `write` made, must read: the
    holds as rows (prod's derived from its runs), the records as they were without them
    (`records`: the environments' JSON as stored now), and a hold added after them newest."""
    for name, held in HOLDS.items():
        assert store.list_holds(name) == held, name
    assert store.get_environment("dev") == DEV
    assert [state.name for state in store.list_environments()] == ["dev", "prod", "qa"]
    assert records and not any('"holds' in text for text in records)
    later = VerifiedHold(revision="c" * 40, since=T0.replace(year=2025))
    store.add_hold("dev", later, keep=1000)
    assert store.list_holds("dev") == [*HOLDS["dev"], later]
