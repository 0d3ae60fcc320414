"""A real `gitopsd serve` prunes old history on its schedule, with the retention settings given
as flags and `GITOPSD_*` variables."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import Event, Run, RunAction, RunStatus, Step, StepAction
from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


def old_history(path: Path, *, runs: int, days: float) -> None:
    """`runs` finished runs of dev created `days` ago, three steps and an event each."""
    store = SqliteStore(path)
    created = datetime.now(UTC) - timedelta(days=days)
    for number in range(runs):
        run_id = f"old-{number}"
        store.save_run(
            Run(
                id=run_id,
                environment="dev",
                revision="0" * 40,
                action=RunAction.APPLY,
                status=RunStatus.SUCCEEDED,
                created_at=created + timedelta(seconds=number),
            )
        )
        store.save_steps(
            [
                Step(
                    run_id=run_id,
                    index=i,
                    component="net",
                    action=StepAction.APPLY,
                    revision="0" * 40,
                )
                for i in range(3)
            ]
        )
        store.append_event(Event(at=created, environment="dev", kind="old", message=run_id))
    store.close()


def test_the_daemon_prunes_runs_and_events_older_than_the_max_age(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    old_history(tmp_path / "data" / "state.db", runs=5, days=100)
    daemon = DaemonProcess(world, GITOPSD_RETENTION_INTERVAL="1")
    daemon.start("--poll-interval", "1h", "--retention-max-age", "90d")
    try:
        daemon.wait_for(lambda: daemon.environment("dev")["status"] == "verified", what="apply")

        def pruned() -> bool:
            runs = daemon.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
            return len(runs) == 1 and not runs[0]["id"].startswith("old-")  # the apply's

        daemon.wait_for(pruned, what="the old runs to be pruned")
        events = daemon.get("/api/v1/events", params={"env": "dev", "limit": 1000}).json()
        assert [e for e in events["events"] if e["kind"] == "old"] == []
        assert "retention deleted 20 rows of runs and steps and 5 events" in daemon.logs()
    finally:
        daemon.stop()


def test_a_bad_retention_setting_is_one_clear_line(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    command = [sys.executable, "-m", "gitopsd", "serve", "--repo", str(world.repo)]
    done = subprocess.run(
        [*command, "--retention-max-age", "soon"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "retention_max_age (GITOPSD_RETENTION_MAX_AGE): " in done.stderr
    assert "invalid duration 'soon'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("interval", ["0.001", "1e-9"])
def test_a_retention_interval_under_a_second_is_refused(tmp_path: Path, interval: str) -> None:
    """A millisecond had the prunings run back to back, flooding the log with skipped runs
    and keeping the store's writer busy; a nanosecond, rounded to nothing, never pruned."""
    world = World.committed(tmp_path, layered())
    command = [sys.executable, "-m", "gitopsd", "serve", "--repo", str(world.repo)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"GITOPSD_RETENTION_INTERVAL": interval},
        timeout=60,  # accepted, the daemon would serve on
    )
    assert done.returncode != 0
    assert "retention_interval (GITOPSD_RETENTION_INTERVAL): " in done.stderr
    assert "greater than or equal to 1" in done.stderr
    assert "Traceback" not in done.stderr
