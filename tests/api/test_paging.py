"""Lists of the API over a real daemon on SQLite: run summaries without steps, a cursor that
pages through runs, a run's steps and events, stable while new runs arrive (issue 17, 12)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters import metrics
from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.api.app import create_app
from gitopsd.api.auth import Tokens
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import (
    Event,
    Request,
    RequestStatus,
    Run,
    RunAction,
    RunStatus,
    Step,
    StepAction,
)
from gitopsd.runtime.service.daemon import Daemon
from tests.api.conftest import JSON, TEST_RULES, TestClient
from tests.runtime.test_promotion_flow import chain
from tests.runtime.world import World

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    world = World.committed(tmp_path, chain())
    workspace = world.workspace(SqliteStore(tmp_path / "state.db"))
    made = Daemon(
        workspace,
        jobs=ManualJobs(workspace.clock.now),
        poll_interval=3600,
        metrics=metrics.recorder,
    )
    made.prepare()
    yield made
    made.stop(grace=5)
    workspace.store.close()
    workspace.source.close()


@pytest.fixture
def api(daemon: Daemon) -> Iterator[TestClient]:
    app = create_app(daemon, tokens=Tokens.none(), webhook_secret=None, rules=TEST_RULES)
    with TestClient(app, headers=JSON) as client:
        yield client


def save_run(
    store: StateStore,
    number: int,
    *,
    steps: int = 3,
    env: str = "dev",
    status: RunStatus = RunStatus.SUCCEEDED,
    action: RunAction = RunAction.APPLY,
) -> str:
    run_id = f"run-{number:03}"
    created = START + timedelta(minutes=number)
    store.save_run(
        Run(
            id=run_id,
            environment=env,
            revision="0" * 40,
            action=action,
            status=status,
            created_at=created,
        )
    )
    store.save_steps(
        [
            Step(
                run_id=run_id,
                index=index,
                component=f"c{index}",
                action=StepAction.APPLY,
                revision="0" * 40,
                output=f"output of step {index}",
            )
            for index in range(steps)
        ]
    )
    return run_id


def pages(api: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following `next_cursor`."""
    found: list[dict[str, Any]] = []
    cursor = params.pop("cursor", None)
    while True:
        asked = params | ({"cursor": cursor} if cursor else {})
        response = api.get(path, params=asked)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def test_runs_are_summaries_without_steps_paged_newest_first_with_a_cursor(
    api: TestClient, daemon: Daemon
) -> None:
    store = daemon.workspace.store
    made = [save_run(store, number) for number in range(7)]
    save_run(store, 99, env="prod")
    first = api.get("/api/v1/runs", params={"env": "dev", "limit": 3}).json()
    assert [run["id"] for run in first["runs"]] == made[:3:-1][:3]
    assert all("steps" not in run and "output" not in str(run) for run in first["runs"])
    assert first["runs"][0]["status"] == "succeeded"
    save_run(store, 50)  # a run that starts between two pages shifts nothing
    later = pages(api, "/api/v1/runs", env="dev", limit=3)
    ids = [run["id"] for page in later for run in page["runs"]]
    assert ids == ["run-050", *made[::-1]]
    assert [len(page["runs"]) for page in later] == [3, 3, 2]
    following = api.get("/api/v1/runs", params={"env": "dev", "cursor": first["next_cursor"]})
    assert [run["id"] for run in following.json()["runs"]] == made[3::-1]


def test_runs_are_filtered_by_status_and_action_across_pages(
    api: TestClient, daemon: Daemon
) -> None:
    store = daemon.workspace.store
    failed = [save_run(store, number, status=RunStatus.FAILED) for number in range(5)]
    save_run(store, 10)
    plan = save_run(store, 11, status=RunStatus.FAILED, action=RunAction.PLAN)
    found = pages(api, "/api/v1/runs", env="dev", status="failed", action="apply", limit=2)
    assert [run["id"] for page in found for run in page["runs"]] == failed[::-1]
    assert [len(page["runs"]) for page in found] == [2, 2, 1]
    planned = api.get("/api/v1/runs", params={"action": "plan"}).json()["runs"]
    assert [run["id"] for run in planned] == [plan]
    refused = api.get("/api/v1/runs", params={"status": "broken"})
    assert refused.status_code == 422
    assert "status: 'broken' is not one of pending, running" in refused.json()["error"]
    assert api.get("/api/v1/runs", params={"action": "deploy"}).status_code == 422


@pytest.mark.parametrize("name", ["status", "action"])
def test_an_empty_filter_is_refused_not_taken_for_no_filter(
    api: TestClient, daemon: Daemon, name: str
) -> None:
    save_run(daemon.workspace.store, 1)
    response = api.get("/api/v1/runs", params={name: ""})
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{name}: '' is not one of ")


def test_a_run_comes_with_a_page_of_its_steps_and_their_output(
    api: TestClient, daemon: Daemon
) -> None:
    run_id = save_run(daemon.workspace.store, 1, steps=5)
    small = api.get(f"/api/v1/runs/{run_id}").json()
    assert [step["index"] for step in small["steps"]] == [0, 1, 2, 3, 4]
    assert small["next_steps_cursor"] is None
    assert small["steps"][4]["output"] == "output of step 4"
    first = api.get(f"/api/v1/runs/{run_id}", params={"steps_limit": 2}).json()
    assert [step["index"] for step in first["steps"]] == [0, 1]
    cursor = first["next_steps_cursor"]
    second = api.get(
        f"/api/v1/runs/{run_id}", params={"steps_limit": 2, "steps_cursor": cursor}
    ).json()
    assert [step["index"] for step in second["steps"]] == [2, 3]
    assert (second["id"], second["status"]) == (run_id, "succeeded")


def test_events_page_newest_first_with_a_cursor(api: TestClient, daemon: Daemon) -> None:
    store = daemon.workspace.store
    for number in range(5):
        store.append_event(Event(at=START, environment="dev", kind="k", message=f"m{number}"))
    found = pages(api, "/api/v1/events", env="dev", limit=2)
    assert [e["message"] for page in found for e in page["events"]] == [
        "m4",
        "m3",
        "m2",
        "m1",
        "m0",
    ]
    assert [len(page["events"]) for page in found] == [2, 2, 1]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/runs", "cursor"),
        ("/api/v1/events", "cursor"),
        ("/api/v1/runs/run-001", "steps_cursor"),
    ],
)
@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "bm90IGpzb24",
        "WyJ4IiwxXQ",
        "WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTIzOjU5IiwieCJd",  # year 9999 at -23:59: past 9999 in UTC
        "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzIzOjU5IiwieCJd",  # year 1 at +23:59: before 1 in UTC
        "WyIyMDI2LTEyLTA3VDA5OjAyOjA1KzAwOjAwIiwiXHVkODAwIl0",  # an id of a lone surrogate
    ],
)
def test_a_cursor_the_api_did_not_hand_out_is_422(
    api: TestClient, daemon: Daemon, path: str, name: str, cursor: str
) -> None:
    save_run(daemon.workspace.store, 1)
    response = api.get(path, params={name: cursor})
    assert response.status_code == 422
    assert response.json() == {"error": f"{name}: not a cursor this API handed out"}


def test_a_cursor_of_one_list_is_refused_by_another(api: TestClient, daemon: Daemon) -> None:
    """A run's steps cursor is not an events cursor, nor the other way round: taken as one,
    its number would page from the wrong place without a word."""
    store = daemon.workspace.store
    run_id = save_run(store, 1, steps=5)
    save_run(store, 2)
    for number in range(5):
        store.append_event(Event(at=START, environment="dev", kind="k", message=f"m{number}"))
    steps_cursor = api.get(f"/api/v1/runs/{run_id}", params={"steps_limit": 2}).json()[
        "next_steps_cursor"
    ]
    events_cursor = api.get("/api/v1/events", params={"limit": 2}).json()["next_cursor"]
    runs_cursor = api.get("/api/v1/runs", params={"limit": 1}).json()["next_cursor"]
    assert None not in (steps_cursor, events_cursor, runs_cursor)
    wrong = [
        ("/api/v1/events", "cursor", steps_cursor),
        (f"/api/v1/runs/{run_id}", "steps_cursor", events_cursor),
        ("/api/v1/runs", "cursor", events_cursor),
        ("/api/v1/runs", "cursor", steps_cursor),
        ("/api/v1/events", "cursor", runs_cursor),
    ]
    for path, name, cursor in wrong:
        response = api.get(path, params={name: cursor})
        assert (path, response.status_code) == (path, 422)
        assert response.json() == {"error": f"{name}: not a cursor this API handed out"}


def test_steps_limit_is_bounded_like_limit(api: TestClient, daemon: Daemon) -> None:
    run_id = save_run(daemon.workspace.store, 1)
    response = api.get(f"/api/v1/runs/{run_id}", params={"steps_limit": 0})
    assert response.status_code == 422
    assert response.json()["error"].startswith("steps_limit: ")


def test_requests_not_started_come_first_on_the_first_page_only(
    api: TestClient, daemon: Daemon
) -> None:
    store = daemon.workspace.store
    made = [save_run(store, number) for number in range(3)]
    store.save_request(
        Request(
            id="req-waiting",
            environment="dev",
            action="apply",
            status=RequestStatus.WAITING,
            reason="a window",
            created_at=START,
            updated_at=START,
        )
    )
    first = api.get("/api/v1/runs", params={"env": "dev", "limit": 2}).json()
    assert [run["id"] for run in first["runs"]] == ["req-waiting", made[2]]
    assert first["runs"][0]["status"] == "waiting" and "steps" not in first["runs"][0]
    rest = api.get("/api/v1/runs", params={"env": "dev", "cursor": first["next_cursor"]}).json()
    assert [run["id"] for run in rest["runs"]] == [made[1], made[0]]
    assert rest["next_cursor"] is None
    waiting = api.get("/api/v1/runs", params={"env": "dev", "status": "waiting"}).json()
    assert [run["id"] for run in waiting["runs"]] == ["req-waiting"]
    done = api.get("/api/v1/runs", params={"env": "dev", "status": "succeeded"}).json()
    assert [run["id"] for run in done["runs"]] == made[::-1]
    plans = api.get("/api/v1/runs", params={"env": "dev", "action": "plan"}).json()
    assert plans["runs"] == []


def test_requests_beyond_the_first_page_come_on_the_next_pages(
    api: TestClient, daemon: Daemon
) -> None:
    """More requests not started than `limit`: the next pages go on with them, then the runs,
    each entry once."""
    store = daemon.workspace.store
    made = [save_run(store, number) for number in range(2)]
    waiting = [f"req-{number}" for number in range(3)]
    for number, request_id in enumerate(waiting):
        at = START + timedelta(seconds=number)
        store.save_request(
            Request(
                id=request_id,
                environment="dev",
                action="apply",
                status=RequestStatus.QUEUED,
                created_at=at,
                updated_at=at,
            )
        )
    found = pages(api, "/api/v1/runs", env="dev", limit=2)
    assert [run["id"] for page in found for run in page["runs"]] == [*waiting, *made[::-1]]
    assert [len(page["runs"]) for page in found] == [2, 2, 1]

    first = api.get("/api/v1/runs", params={"env": "dev", "limit": 2}).json()
    later = datetime.now(UTC) + timedelta(seconds=1)  # after the first page was read
    started = store.get_request("req-0")
    assert started is not None
    store.save_request(started.model_copy(update={"status": RequestStatus.RUNNING}))
    store.save_run(Run(id="req-0", environment="dev", revision="0" * 40, action=RunAction.APPLY,
                       status=RunStatus.RUNNING, created_at=later))  # fmt: skip
    store.save_request(Request(id="req-new", environment="dev", action="apply",
                               created_at=later, updated_at=later))  # fmt: skip
    rest = pages(api, "/api/v1/runs", env="dev", limit=2, cursor=first["next_cursor"])
    shown = [run["id"] for page in [first, *rest] for run in page["runs"]]
    assert shown == [*waiting, *made[::-1]]  # req-0 once, as it was; the new ones next time


def test_a_request_taken_up_but_without_its_run_yet_is_listed_once(
    api: TestClient, daemon: Daemon
) -> None:
    """A worker marks a request running, then makes its run: in between, the list shows the
    request (running), so a page read then does not lose it; then its run alone."""
    store = daemon.workspace.store
    made = save_run(store, 1)
    store.save_request(
        Request(id="req-taken", environment="dev", action="apply",
                status=RequestStatus.RUNNING, created_at=START, updated_at=START)
    )  # fmt: skip
    listed = api.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    assert [(run["id"], run["status"]) for run in listed] == [
        ("req-taken", "running"),
        (made, "succeeded"),
    ]
    save_run(store, 2, status=RunStatus.RUNNING)
    store.save_run(Run(id="req-taken", environment="dev", revision="0" * 40,
                       action=RunAction.APPLY, status=RunStatus.RUNNING,
                       created_at=START + timedelta(hours=1)))  # fmt: skip
    listed = api.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    assert [run["id"] for run in listed] == ["req-taken", "run-002", made]


def test_a_running_drift_check_is_not_listed_as_a_run(api: TestClient, daemon: Daemon) -> None:
    """A drift check starts no run of its id (its repair is a run of its own): once a worker
    runs it, the runs list does not show it, queued it does."""
    store = daemon.workspace.store
    made = save_run(store, 1)
    check = Request(id="req-check", environment="dev", action="drift",
                    status=RequestStatus.QUEUED, created_at=START, updated_at=START)  # fmt: skip
    store.save_request(check)
    listed = api.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    assert [run["id"] for run in listed] == ["req-check", made]
    store.save_request(check.model_copy(update={"status": RequestStatus.RUNNING}))
    listed = api.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    assert [run["id"] for run in listed] == [made]
