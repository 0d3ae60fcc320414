"""`gitopsd runs` and `gitopsd history` page through long histories with `--before`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import Event, Run, RunAction, RunStatus
from tests.cli.test_run_commands import as_json, gitopsd
from tests.runtime.world import World

START = datetime(2026, 1, 1, tzinfo=UTC)


def recorded(world: World, runs: list[dict[str, Any]], events: int = 0) -> list[int]:
    """Runs of dev made of `runs`' fields (run-0 the oldest, a minute apart; by default
    succeeded applies) and `events` events, in the state database; the events' ids."""
    gitopsd(world, "runs")  # creates the state database
    store = SqliteStore(world.repo / ".gitopsd" / "state.db")
    for number, fields in enumerate(runs):
        defaults: dict[str, Any] = {
            "id": f"run-{number}",
            "action": RunAction.APPLY,
            "status": RunStatus.SUCCEEDED,
            "created_at": START + timedelta(minutes=number),
        }
        defaults["environment"] = "dev"
        store.save_run(Run(revision="0" * 40, **(defaults | fields)))
    made = [
        store.append_event(Event(at=START, environment="dev", kind="k", message=f"m{n}"))
        for n in range(events)
    ]
    store.close()
    return [event.id or 0 for event in made]


def test_runs_page_with_before_the_last_run_shown(world: World) -> None:
    recorded(world, [{}] * 5)
    first = gitopsd(world, "runs", "--env", "dev", "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip().endswith("(older runs: --before run-3)")
    page = as_json(gitopsd(world, "runs", "--limit", "2", "--before", "run-3", "--output", "json"))
    assert [run["id"] for run in page["runs"]] == ["run-2", "run-1"]
    unknown = gitopsd(world, "runs", "--before", "nope")
    assert unknown.returncode == 1 and "no run 'nope'" in unknown.stderr


def test_runs_pages_on_after_the_last_run_shown_was_pruned(world: World) -> None:
    """Retention may delete the run a page ended with before the next page is asked for: its
    id still says when it was made, and the page lists the runs made before that second."""
    made = [START + timedelta(minutes=number) for number in range(-1, 5)]
    ids = [f"{moment:%Y%m%dT%H%M%S}-00000{number}" for number, moment in enumerate(made)]
    runs: list[dict[str, Any]] = [
        {"id": i, "created_at": at} for i, at in zip(ids, made, strict=True)
    ]
    runs[0]["environment"] = "staging"  # made before all the others, kept by another retention
    recorded(world, runs)
    first = gitopsd(world, "runs", "--limit", "2")
    assert first.stdout.rstrip().endswith(f"(older runs: --before {ids[4]})")
    store = SqliteStore(world.repo / ".gitopsd" / "state.db")
    store.prune_runs("dev", created_before=made[4] + timedelta(seconds=1), keep=1, limit=10)
    store.close()
    kept = as_json(gitopsd(world, "runs", "--env", "dev", "--output", "json"))["runs"]
    assert [run["id"] for run in kept] == [ids[5]]  # the page's last run is gone
    page = gitopsd(world, "runs", "--before", ids[4], "--output", "json")
    assert page.returncode == 0, page.stderr
    assert [run["id"] for run in as_json(page)["runs"]] == [ids[0]]


def test_runs_chooses_by_status_and_action_page_after_page(world: World) -> None:
    failed = [
        {"action": action, "status": RunStatus.FAILED}
        for action in (RunAction.APPLY, RunAction.DESTROY) * 2
    ]
    recorded(world, [*failed, {}, {}])  # run-4 and run-5 succeeded applies

    def ids(*flags: str) -> list[str]:
        listed = as_json(gitopsd(world, "runs", *flags, "--output", "json"))["runs"]
        return [run["id"] for run in listed]

    assert ids("--status", "failed") == ["run-3", "run-2", "run-1", "run-0"]
    assert ids("--status", "failed", "--action", "apply") == ["run-2", "run-0"]
    assert ids("--action", "apply", "--limit", "2", "--before", "run-4") == ["run-2", "run-0"]
    first = gitopsd(world, "runs", "--status", "failed", "--limit", "2")
    assert first.stdout.rstrip().endswith("(older runs: --before run-2)")
    wrong = gitopsd(world, "runs", "--status", "broken")
    assert wrong.returncode == 64 and "broken" in wrong.stderr


def test_a_runs_error_follows_its_status_once(world: World) -> None:
    errors = {
        "run-0": (RunStatus.FAILED, "failed: clusters; rolled back to 0f0f0f0f0f0f"),
        "run-1": (RunStatus.CANCELLED, "cancelled"),
        "run-2": (RunStatus.FAILED, "run_timeout of 60s reached"),
    }
    recorded(world, [{"status": status, "error": error} for status, error in errors.values()])
    shown = gitopsd(world, "runs").stdout
    assert "  failed: clusters; rolled back to 0f0f0f0f0f0f\n" in shown
    assert "  cancelled\n" in shown and "cancelled: cancelled" not in shown
    assert "  failed: run_timeout of 60s reached\n" in shown
    listed = as_json(gitopsd(world, "runs", "--output", "json"))["runs"]
    assert listed[-1]["error"] == errors["run-0"][1]  # the record itself is unchanged


def test_history_pages_with_before_the_last_event_shown(world: World) -> None:
    ids = recorded(world, [], events=5)
    first = gitopsd(world, "history", "--env", "dev", "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip().endswith(f"(older events: --before {ids[3]})")
    asked = ["history", "--limit", "2", "--before", str(ids[3]), "--output", "json"]
    page = as_json(gitopsd(world, *asked))
    assert [event["message"] for event in page["events"]] == ["m2", "m1"]
