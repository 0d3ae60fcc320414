"""Saved plans through a real daemon's API (SQLite, real drivers): 202 when fresh, 409 when
stale, 404 when unknown; and the worker checks the plan again when it takes the request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gitopsd.api.app import create_app
from gitopsd.api.auth import Tokens, hash_token
from gitopsd.model.state import RunStatus
from gitopsd.runtime.promotion import saved_plans
from gitopsd.runtime.service.daemon import Daemon
from gitopsd.runtime.service.followups import BUSY_RETRY
from tests.api.conftest import JSON, TEST_RULES, TestClient
from tests.daemon.conftest import eventually, status
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import environment

ELSEWHERE = "another-host:1:abcdef01"  # a lease holder this host cannot see die


@pytest.fixture
def failed_dev(started: Callable[..., Any]) -> tuple[Any, ...]:
    """A daemon whose first apply of dev failed at dns (and rolled back what it had done),
    its drivers working again, and a saved plan of what is left to do."""
    files = layered(**{"environments/qa.yaml": environment("qa", variables={"size": 1})})
    daemon, clock, jobs, world = started(files, control={"fail": {"dns:apply": -1}})
    both = ("dev", "qa")
    eventually(lambda: all(status(daemon, e) == "failed" for e in both), "the failed applies")
    world.control()
    world.journal_path.unlink()
    _, _, plan = saved_plans.save(daemon.workspace, "dev")
    assert plan is not None and {"app", "dns"} <= set(plan.changes)
    return daemon, clock, jobs, world, plan


@pytest.fixture
def api(failed_dev: tuple[Any, ...]) -> Iterator[TestClient]:
    daemon: Daemon = failed_dev[0]
    app = create_app(daemon, tokens=Tokens.none(), webhook_secret=None, rules=TEST_RULES)
    with TestClient(app, headers=JSON) as client:
        yield client


def apply_plan(api: TestClient, plan_id: str, env: str = "dev") -> Any:
    return api.post(f"/api/v1/environments/{env}/runs", json={"action": "apply", "plan": plan_id})


def test_a_fresh_plan_is_202_and_runs_once(failed_dev: tuple[Any, ...], api: TestClient) -> None:
    daemon, _, _, world, plan = failed_dev
    plan_id = plan.id
    response = apply_plan(api, plan_id)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    assert response.json() == {"id": run_id, "plan": plan_id, "status": "pending"}
    store = daemon.workspace.store

    def finished() -> bool:
        run = store.get_run(run_id)
        return run is not None and run.status.is_finished

    eventually(finished, "the plan's run")
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.SUCCEEDED, run
    assert sorted(world.calls("apply")) == sorted(plan.changes)
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded"

    again = apply_plan(api, plan_id)
    assert again.status_code == 409
    stale = f"plan {plan_id} is stale: it was applied already, by run {run_id}"
    assert again.json() == {"error": stale}
    unknown = apply_plan(api, "no-such-plan")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no saved plan 'no-such-plan'"})
    assert sorted(world.calls("apply")) == sorted(plan.changes)


def test_a_plan_stale_when_asked_is_409_and_starts_nothing(
    failed_dev: tuple[Any, ...], api: TestClient
) -> None:
    daemon, _, _, world, plan = failed_dev
    plan_id = plan.id
    daemon.workspace.apply("dev", components=["dns"])  # another apply in between
    response = apply_plan(api, plan_id)
    assert response.status_code == 409
    assert "the recorded state of dev changed" in response.json()["error"]
    assert world.calls("apply") == ["dns"]


QA_ONLY = f"""
- name: qa-team
  email: qa@example.com
  roles: [read, operate]
  token_sha256: {hash_token("qa-token")}
  environments: [qa]
"""


def test_a_plan_of_an_environment_the_token_does_not_reach_is_unknown(
    failed_dev: tuple[Any, ...], tmp_path: Path
) -> None:
    """A token scoped to qa learns nothing of dev from a dev plan's id: 404, as for an id
    nobody saved (before: 409 "plan P is a plan of dev, not qa")."""
    daemon, _, _, world, plan = failed_dev
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text(QA_ONLY, encoding="utf-8")
    app = create_app(daemon, tokens=Tokens.load(tokens_file), webhook_secret=None, rules=TEST_RULES)
    with TestClient(app, headers={**JSON, "Authorization": "Bearer qa-token"}) as qa_team:
        response = apply_plan(qa_team, plan.id, env="qa")
    assert (response.status_code, response.json()) == (404, {"error": f"no saved plan {plan.id!r}"})
    assert world.calls("apply") == []


def test_a_plan_of_another_environment_is_409(failed_dev: tuple[Any, ...], api: TestClient) -> None:
    _, _, _, world, plan = failed_dev
    response = apply_plan(api, plan.id, env="qa")
    assert response.status_code == 409, response.text
    assert f"plan {plan.id} is a plan of dev, not qa" in response.json()["error"]
    assert apply_plan(api, plan.id, env="prod").status_code == 404  # no such environment
    assert world.calls("apply") == []


def test_the_worker_checks_the_plan_again_when_it_takes_it(
    failed_dev: tuple[Any, ...], api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    daemon, clock, jobs, world, plan = failed_dev
    plan_id = plan.id
    caplog.set_level(logging.WARNING, logger="gitopsd")
    store = daemon.workspace.store
    eventually(  # the failed run's lease is let go just after its end is recorded
        lambda: store.acquire_lease("dev", ELSEWHERE, now=clock.now(), ttl=3600),
        "dev's lease to be free for another host",
    )
    response = apply_plan(api, plan_id)
    assert response.status_code == 202, response.text  # fresh when asked...
    run_id = response.json()["id"]
    eventually(lambda: "is busy" in caplog.text, "the worker to find dev busy")
    store.release_lease("dev", ELSEWHERE)
    daemon.workspace.apply("dev", components=["dns"])  # ...stale by the time it is taken
    clock.current += timedelta(seconds=BUSY_RETRY + 1)
    jobs.run_due()

    def refused() -> bool:
        return any(e.kind == "request.refused" for e in store.list_events("dev", limit=20))

    eventually(refused, "the worker to refuse the stale plan")
    (event,) = [e for e in store.list_events("dev", limit=20) if e.kind == "request.refused"]
    assert f"plan {plan_id} is stale" in event.message
    assert event.data["request"] == run_id
    assert store.get_run(run_id) is None
    assert world.calls("apply") == ["dns"]


def test_a_plan_a_window_holds_waits_as_any_apply_and_is_not_refused(
    started: Callable[..., Any],
) -> None:
    window = {"kind": "deny", "schedule": "* * * * *", "duration": "2h", "timezone": "UTC"}
    files = layered(
        **{"environments/dev.yaml": environment("dev", variables={"size": 3}, windows=[window])}
    )
    (
        daemon,
        _,
        _,
        world,
    ) = started(files)
    eventually(lambda: status(daemon, "dev") == "waiting_window", "the commit held by the window")
    _, _, plan = saved_plans.save(daemon.workspace, "dev")
    assert plan is not None and plan.changes
    app = create_app(daemon, tokens=Tokens.none(), webhook_secret=None, rules=TEST_RULES)
    with TestClient(app, headers=JSON) as client:
        response = apply_plan(client, plan.id)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    request = daemon.workspace.store.get_request
    eventually(lambda: getattr(request(run_id), "status", None) == "waiting", "the plan to wait")
    held = request(run_id)
    assert held is not None and "window" in (held.reason or "")
    assert world.calls("apply") == []
