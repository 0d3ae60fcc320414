"""Retention on real stores (SQLite and PostgreSQL): old runs, steps and events are pruned in
bounded batches, and what promotion and rollback need is kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.postgres_store import PostgresStore
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import Event, Run, RunAction, RunStatus, Step, StepAction
from gitopsd.runtime.notifications import outbox
from gitopsd.runtime.promotion import promoting
from gitopsd.runtime.runs.workspace import Workspace
from gitopsd.runtime.service.retention import DAY, Policy, Retention
from tests.runtime.world import World, component, environment

ENV = "environments/dev.yaml"
NET = "components/net/component.yaml"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """The real stores retention runs against (the runtime conftest's is in memory)."""
    if request.param == "sqlite":
        opened: StateStore = SqliteStore(tmp_path / "state.db")
    else:
        opened = PostgresStore(request.getfixturevalue("postgres_url"))
    yield opened
    opened.close()


def old_run(store: StateStore, run_id: str, *, days: float, steps: int, **changes: object) -> Run:
    """A finished apply run created `days` ago with `steps` steps, as history leaves them."""
    created = datetime.now(UTC) - timedelta(days=days)
    run = Run(
        id=run_id,
        environment="dev",
        revision="0" * 40,
        action=RunAction.APPLY,
        status=RunStatus.SUCCEEDED,
        created_at=created,
    ).model_copy(update=changes)
    store.save_run(run)
    made = [
        Step(run_id=run_id, index=i, component="net", action=StepAction.APPLY, revision="0" * 40)
        for i in range(steps)
    ]
    store.save_steps(made)
    return run


def rows_of(store: StateStore, runs: list[Run]) -> int:
    """What pruning `runs` deletes: each run and its steps."""
    return sum(1 + len(store.list_steps(run.id)) for run in runs)


def test_runs_beyond_the_age_and_count_go_in_bounded_batches_and_verified_revisions_roll_back(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    revisions, applied = [], []
    for value in (1, 2, 3):
        revisions.append(
            world.commit({ENV: environment("dev"), NET: component("net", inputs={"v": value})})
        )
        applied.append(workspace.apply("dev"))
    assert all(run.status is RunStatus.SUCCEEDED for run in applied)
    expired = [old_run(store, f"old-{n}", days=100 + n, steps=6) for n in range(3)]
    # unfinished, in an environment of its own (a workspace would resume it before a new run)
    stuck = old_run(
        store, "old-stuck", days=200, steps=2, status=RunStatus.RUNNING, environment="other"
    )
    held = store.list_holds("dev")  # the verified revisions: rows no pruning touches
    assert [hold.revision for hold in held] == revisions
    expected_rows = rows_of(store, [*expired, applied[0]])

    policy = Policy(max_age=90 * DAY, max_runs=2, batch=5)
    pruned = Retention(store, clock=SystemClock(), policy=policy).prune()

    assert pruned.runs and max(pruned.runs) <= 5
    assert sum(pruned.runs) == expected_rows
    remaining = [run.id for run in store.list_runs("dev")]
    assert remaining == [applied[2].id, applied[1].id]
    assert [run.id for run in store.list_runs("other")] == [stuck.id]
    assert store.list_steps(expired[0].id) == store.list_steps(applied[0].id) == []
    assert len(store.list_steps(stuck.id)) == 2  # unfinished: resumed from its steps later
    assert store.list_holds("dev") == held
    rolled, _ = promoting.roll_back(workspace, "dev", to=revisions[0])
    assert rolled.status is RunStatus.SUCCEEDED
    assert store.get_environment("dev").revision == revisions[0]  # type: ignore[union-attr]
    # the rollback's run is the newest now: the oldest of the three goes
    second = rows_of(store, [applied[1]])
    assert Retention(store, clock=SystemClock(), policy=policy).prune().runs == [second]


def test_events_go_by_age_and_count_but_not_before_the_outbox_delivered_them(
    store: StateStore,
) -> None:
    now = datetime.now(UTC)
    for days in (120, 100, 5, 4, 3, 2, 1):
        store.append_event(
            Event(at=now - timedelta(days=days), environment="dev", kind="k", message=f"{days}d")
        )
    store.append_event(Event(at=now - timedelta(days=200), kind="k", message="global"))
    undelivered = store.append_event(
        Event(at=now - timedelta(days=300), environment="dev", kind="k", message="late")
    )
    store.save_cursor(outbox.CURSOR, (undelivered.id or 0) - 1)

    policy = Policy(max_age=90 * DAY, max_events=4, batch=2)
    pruned = Retention(store, clock=SystemClock(), policy=policy).prune()

    # no environment: "global" by age; dev: all but its newest 4, which count "late", older
    # than the age but kept until the outbox delivered it
    assert pruned.events == [1, 2, 2]
    assert [e.message for e in store.list_events()] == ["late", "1d", "2d", "3d"]


def test_nothing_is_pruned_within_the_age_and_count(store: StateStore) -> None:
    old_run(store, "recent", days=1, steps=3)
    store.append_event(Event(at=datetime.now(UTC), environment="dev", kind="k", message="m"))
    pruned = Retention(store, clock=SystemClock(), policy=Policy()).prune()
    assert (pruned.runs, pruned.events) == ([], [])
    assert [run.id for run in store.list_runs()] == ["recent"]
