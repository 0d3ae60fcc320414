"""Promotions, rollbacks and diffs through the API (SPEC section 6): what each route passes to
the daemon and how it answers: 202 with the run id, 409 with the reason, 404, 422, and the
request rules. The real daemon behind them: tests/daemon/test_actions_live.py."""

from __future__ import annotations

import pytest

from gitopsd.errors import ConflictError, StandbyError
from gitopsd.runtime.control import Identity
from tests.api.conftest import TestClient
from tests.api.fake_control import FakeControl

PROMOTIONS = "/api/v1/environments/prod/promotions"
ROLLBACKS = "/api/v1/environments/prod/rollbacks"
DIFF = "/api/v1/environments/prod/diff"


def test_a_promotion_is_202_with_the_run_id_and_location(
    client: TestClient, fake: FakeControl
) -> None:
    response = client.post(PROMOTIONS, json={"revision": "abc123", "force": True})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert response.json() == {"run_id": run_id, "id": run_id, "status": "pending"}
    assert response.headers["Location"] == f"/api/v1/runs/{run_id}"
    (call,) = fake.calls_to("promote")
    assert call.args == ("prod",)
    assert call.kwargs == {"revision": "abc123", "force": True, "identity": Identity("local")}


@pytest.mark.parametrize("body", [None, {}])
def test_a_promotion_without_a_body_takes_the_upstreams_newest_unforced(
    client: TestClient, fake: FakeControl, body: dict[str, object] | None
) -> None:
    assert client.post(PROMOTIONS, json=body).status_code == 202
    (call,) = fake.calls_to("promote")
    assert (call.kwargs["revision"], call.kwargs["force"]) == (None, False)


def test_a_refused_promotion_is_409_with_the_reason(client: TestClient, fake: FakeControl) -> None:
    fake.refuse_run = ConflictError("dev never verified abc123")
    response = client.post(PROMOTIONS, json={"revision": "abc123"})
    assert response.status_code == 409
    assert response.json() == {"error": "dev never verified abc123"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"force": "yes"}, "force"),
        ({"revision": ""}, "revision"),
        ({"revision": 7}, "revision"),
        ({"to": "abc"}, "to"),
        ([], "body"),
    ],
)
def test_a_malformed_promotion_is_422_naming_the_field(
    client: TestClient, fake: FakeControl, body: object, field: str
) -> None:
    response = client.post(PROMOTIONS, json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}:")
    assert fake.calls_to("promote") == []


def test_a_rollback_is_202_with_the_run_id(client: TestClient, fake: FakeControl) -> None:
    response = client.post(ROLLBACKS, json={"revision": "abc123"})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/v1/runs/{response.json()['run_id']}"
    (call,) = fake.calls_to("rollback")
    assert call.kwargs == {"revision": "abc123", "identity": Identity("local")}


@pytest.mark.parametrize(
    ("body", "field"),
    [(None, "body"), ({}, "revision"), ({"force": True, "revision": "a"}, "force")],
)
def test_a_rollback_names_its_revision_or_is_422(
    client: TestClient, fake: FakeControl, body: object, field: str
) -> None:
    response = client.post(ROLLBACKS, json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}:")
    assert fake.calls_to("rollback") == []


def test_a_refused_rollback_is_409_with_the_reason(client: TestClient, fake: FakeControl) -> None:
    fake.refuse_run = ConflictError("prod never verified abc123: rollback only returns ...")
    response = client.post(ROLLBACKS, json={"revision": "abc123"})
    assert response.status_code == 409
    assert response.json()["error"].startswith("prod never verified abc123")


@pytest.mark.parametrize("path", [PROMOTIONS, ROLLBACKS, DIFF])
def test_an_unknown_environment_is_404(client: TestClient, path: str) -> None:
    url = path.replace("/prod/", "/qa/")
    response = client.get(url) if path == DIFF else client.post(url, json={"revision": "abc123"})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown environment 'qa'"}


@pytest.mark.parametrize("path", [PROMOTIONS, ROLLBACKS])
def test_a_standby_refuses_them_with_503_naming_the_leader(
    client: TestClient, fake: FakeControl, path: str
) -> None:
    fake.refuse_run = StandbyError("standby and takes no work; the leader is other:1:a", leader="a")
    response = client.post(path, json={"revision": "abc123"})
    assert response.status_code == 503
    assert "the leader is other:1:a" in response.json()["error"]


def test_a_diff_passes_from_and_to(client: TestClient, fake: FakeControl) -> None:
    response = client.get(DIFF, params={"from": "a", "to": "b"})
    assert response.status_code == 200, response.text
    assert response.json()["to"] == "b"
    (call,) = fake.calls_to("diff")
    assert call.kwargs == {"old": "a", "new": "b", "other": None}


def test_a_diff_defaults_to_current_and_next(client: TestClient, fake: FakeControl) -> None:
    assert client.get(DIFF).status_code == 200
    (call,) = fake.calls_to("diff")
    assert call.kwargs == {"old": None, "new": None, "other": None}


def test_a_diff_against_another_environment(client: TestClient, fake: FakeControl) -> None:
    assert client.get(DIFF, params={"environment": "dev"}).status_code == 200
    assert client.get(DIFF, params={"environment": "qa"}).status_code == 404
    assert [c.kwargs["other"] for c in fake.calls_to("diff")] == ["dev", "qa"]


def test_a_diff_of_an_unknown_revision_is_404(client: TestClient) -> None:
    response = client.get(DIFF, params={"from": "nope"})
    assert response.status_code == 404
    assert "no commit named 'nope'" in response.json()["error"]


def test_a_cross_site_promotion_is_403_and_reaches_nothing(
    client: TestClient, fake: FakeControl
) -> None:
    response = client.post(PROMOTIONS, json={}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert fake.calls == []


def test_a_promotion_to_another_host_is_421(client: TestClient, fake: FakeControl) -> None:
    response = client.post(PROMOTIONS, json={}, headers={"Host": "evil.example"})
    assert response.status_code == 421
    assert fake.calls == []
