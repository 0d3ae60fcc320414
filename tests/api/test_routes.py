"""What each route answers and what it asks of the daemon, in open mode (roles are
test_auth_matrix's concern); and that no call into the daemon blocks the event loop."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.errors import StalePlanError, StandbyError
from gitopsd.runtime.control import Identity
from tests.api.conftest import TestClient
from tests.api.fake_control import PROMETHEUS_TYPE, FakeControl


def test_healthz_needs_nothing_from_the_daemon(client: TestClient, fake: FakeControl) -> None:
    fake.crash = RuntimeError("the daemon is wedged")
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_says_ready_and_who_leads(client: TestClient) -> None:
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (
        200,
        {"ready": True, "role": "leader", "leader": "host:1:abc"},
    )


def test_a_ready_standby_is_ready_and_names_the_leader(
    client: TestClient, fake: FakeControl
) -> None:
    fake.role = {"role": "standby", "leader": "other:2:def"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "role": "standby", "leader": "other:2:def"}


def test_readyz_is_503_with_the_reason(client: TestClient, fake: FakeControl) -> None:
    fake.ready = (False, "the state store does not answer")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "reason": "the state store does not answer",
        "role": "leader",
        "leader": "host:1:abc",
    }


def test_work_sent_to_a_standby_is_503_naming_the_leader(
    client: TestClient, fake: FakeControl
) -> None:
    fake.refuse_run = StandbyError(
        "this gitopsd is a standby and takes no work; the leader is other:2:def",
        leader="other:2:def",
    )
    response = client.post("/api/v1/environments/dev/runs", json={"action": "apply"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": "this gitopsd is a standby and takes no work; the leader is other:2:def"
    }


def test_metrics_are_the_daemons_exposition(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == PROMETHEUS_TYPE
    assert response.content == b"# TYPE gitopsd_build_info gauge\ngitopsd_build_info 1.0\n"


def test_environments_are_the_status_document(client: TestClient, fake: FakeControl) -> None:
    response = client.get("/api/v1/environments")
    assert response.json() == {
        "environments": [fake.environments["dev"], fake.environments["prod"]]
    }


def test_one_environment_is_its_object(client: TestClient, fake: FakeControl) -> None:
    assert client.get("/api/v1/environments/prod").json() == fake.environments["prod"]
    assert fake.calls_to("status")[0].args == ("prod",)


def test_runs_pass_the_filter_and_limit(client: TestClient, fake: FakeControl) -> None:
    response = client.get("/api/v1/runs", params={"env": "dev", "limit": 7, "cursor": "W10"})
    assert response.json() == {"runs": [fake.stored_runs[1]], "next_cursor": None}
    (call,) = fake.calls_to("runs")
    assert (call.args, call.kwargs) == (
        ("dev",),
        {"limit": 7, "cursor": "W10", "status": None, "action": None},
    )


def test_runs_and_events_default_to_all_environments(client: TestClient, fake: FakeControl) -> None:
    assert client.get("/api/v1/runs").json() == {"runs": fake.stored_runs, "next_cursor": None}
    assert len(client.get("/api/v1/events").json()["events"]) == 3
    assert [(c.args, c.kwargs) for c in fake.calls] == [
        ((None,), {"limit": 50, "cursor": None, "status": None, "action": None}),
        ((None,), {"limit": 100, "cursor": None}),
    ]


def test_one_run_with_its_steps(client: TestClient) -> None:
    response = client.get("/api/v1/runs/run-1")
    assert response.json()["steps"] == [{"n": 1}]


def test_starting_a_run_is_202_with_its_id_and_location(
    client: TestClient, fake: FakeControl
) -> None:
    body = {"action": "apply", "components": ["vpc", "dns"], "revision": "abc123"}
    response = client.post("/api/v1/environments/dev/runs", json=body)
    assert response.status_code == 202
    assert response.json() == {"id": "run-new-1", "status": "pending"}
    assert response.headers["Location"] == "/api/v1/runs/run-new-1"
    (call,) = fake.calls_to("submit_run")
    assert call.args == ("dev",)
    assert call.kwargs == {**body, "identity": Identity("local")}


def test_a_run_without_components_or_revision_passes_none(
    client: TestClient, fake: FakeControl
) -> None:
    client.post("/api/v1/environments/dev/runs", json={"action": "destroy"})
    (call,) = fake.calls_to("submit_run")
    assert (call.kwargs["components"], call.kwargs["revision"]) == (None, None)


def test_a_component_named_twice_is_422_and_nothing_is_asked(
    client: TestClient, fake: FakeControl
) -> None:
    body = {"action": "destroy", "components": ["vpc", *["dns"] * 50_000, "vpc"]}
    response = client.post("/api/v1/environments/dev/runs", json=body)
    assert response.status_code == 422, response.text
    assert "names dns, vpc more than once" in response.json()["error"]
    assert fake.calls_to("submit_run") == []


def test_applying_a_saved_plan_is_202_with_the_run_id_and_location(
    client: TestClient, fake: FakeControl
) -> None:
    body = {"action": "apply", "plan": "plan-1"}
    response = client.post("/api/v1/environments/dev/runs", json=body)
    assert response.status_code == 202
    assert response.json() == {"id": "run-new-1", "plan": "plan-1", "status": "pending"}
    assert response.headers["Location"] == "/api/v1/runs/run-new-1"
    (call,) = fake.calls_to("submit_plan")
    assert (call.args, call.kwargs) == (("dev",), {"plan": "plan-1", "identity": Identity("local")})
    assert fake.calls_to("submit_run") == []


def test_a_saved_plan_that_changes_nothing_is_200_without_a_run(client: TestClient) -> None:
    body = {"action": "apply", "plan": "plan-empty"}
    response = client.post("/api/v1/environments/dev/runs", json=body)
    assert response.status_code == 200
    assert response.json() == {"id": None, "plan": "plan-empty", "status": "nothing to change"}


def test_an_unknown_plan_is_404_and_a_stale_one_409(client: TestClient, fake: FakeControl) -> None:
    unknown = client.post("/api/v1/environments/dev/runs", json={"action": "apply", "plan": "x"})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no saved plan 'x'"})
    fake.refuse_run = StalePlanError("plan plan-1 is stale: ...")
    stale = client.post("/api/v1/environments/dev/runs", json={"action": "apply", "plan": "plan-1"})
    assert (stale.status_code, stale.json()) == (409, {"error": "plan plan-1 is stale: ..."})


@pytest.mark.parametrize(
    "body",
    [
        {"action": "plan", "plan": "plan-1"},
        {"action": "apply", "plan": "plan-1", "revision": "abc123"},
        {"action": "apply", "plan": "plan-1", "components": ["vpc"]},
    ],
)
def test_a_plan_goes_only_with_a_bare_apply(
    client: TestClient, fake: FakeControl, body: Any
) -> None:
    response = client.post("/api/v1/environments/dev/runs", json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith("plan: only with action apply")
    assert fake.calls_to("submit_plan") == [] and fake.calls_to("submit_run") == []


def test_cancelling_a_run_is_202_404_unknown_409_finished(
    client: TestClient, fake: FakeControl
) -> None:
    going = client.post("/api/v1/runs/run-2/cancel")
    assert going.status_code == 202
    assert going.json() == {"id": "run-2", "cancel_requested": True}
    assert fake.calls[-1].args == ("run-2",)
    unknown = client.post("/api/v1/runs/run-9/cancel")
    assert unknown.status_code == 404 and "run-9" in unknown.json()["error"]
    finished = client.post("/api/v1/runs/run-1/cancel")
    assert finished.status_code == 409 and "already succeeded" in finished.json()["error"]


def test_drift_check_is_202_with_its_id(client: TestClient, fake: FakeControl) -> None:
    response = client.post("/api/v1/environments/prod/drift")
    assert (response.status_code, response.json()) == (202, {"id": "drift-new-1"})
    assert fake.calls_to("submit_drift_check")[0].args == ("prod",)
    assert fake.calls_to("submit_drift_check")[0].kwargs["remediate"] is False


@pytest.mark.parametrize(
    ("body", "remediate"), [(None, False), ({}, False), ({"remediate": False}, False),
                            ({"remediate": True}, True)],
)  # fmt: skip
def test_a_drift_check_may_ask_to_remediate_as_the_cli_flag_does(
    client: TestClient, fake: FakeControl, body: dict[str, bool] | None, remediate: bool
) -> None:
    response = client.post("/api/v1/environments/prod/drift", json=body)
    assert response.status_code == 202, response.text
    assert fake.calls_to("submit_drift_check")[0].kwargs["remediate"] is remediate


@pytest.mark.parametrize(
    ("body", "field"),
    [({"remediate": "yes"}, "remediate"), ({"remediate": 1}, "remediate"), ({"fix": True}, "fix")],
)
def test_a_drift_check_s_body_is_checked_as_every_body_is(
    client: TestClient, fake: FakeControl, body: dict[str, object], field: str
) -> None:
    response = client.post("/api/v1/environments/prod/drift", json=body)
    assert response.status_code == 422 and field in response.text, response.text
    assert fake.calls_to("submit_drift_check") == []


def test_approval_returns_the_daemons_answer(client: TestClient, fake: FakeControl) -> None:
    response = client.post("/api/v1/environments/prod/approvals", json={"revision": "abc"})
    assert response.status_code == 200
    assert response.json() == {"environment": "prod", "revision": "abc", "approvals": ["local"]}


def test_approval_without_a_body_approves_the_pending_revision(
    client: TestClient, fake: FakeControl
) -> None:
    assert client.post("/api/v1/environments/prod/approvals").status_code == 200
    assert fake.calls_to("approve")[0].kwargs["revision"] is None


def test_no_daemon_call_runs_on_the_event_loop(client: TestClient, fake: FakeControl) -> None:
    """The daemon answers from SQLite: every route that calls it must run in the threadpool."""
    client.get("/readyz")
    client.get("/metrics")
    client.get("/api/v1/environments")
    client.get("/api/v1/environments/dev")
    client.get("/api/v1/runs")
    client.get("/api/v1/runs/run-1")
    client.get("/api/v1/events")
    client.post("/api/v1/environments/dev/runs", json={"action": "plan"})
    client.post("/api/v1/environments/dev/drift")
    client.post("/api/v1/environments/dev/approvals")
    methods = {call.method for call in fake.calls}
    assert len(methods) == 10  # every Control method but request_fetch (see test_webhooks)
    assert [call.method for call in fake.calls if call.on_event_loop] == []
