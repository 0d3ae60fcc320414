"""Every failure is JSON `{"error": ...}` with the status SPEC section 6 gives it: unknown things
404, wrong methods 405, malformed requests 422 (naming the field), refusals 403/409/422, bodies
over the limit 413 (declared or streamed), and a crash a logged, opaque 500."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from gitopsd.api.app import create_app
from gitopsd.api.auth import Tokens
from gitopsd.errors import (
    ApprovalConflictError,
    ApproverRefusedError,
    ConflictError,
    InvalidRequestError,
)
from tests.api.conftest import TEST_RULES, MakeClient, TestClient
from tests.api.fake_control import FakeControl

RUNS = "/api/v1/environments/dev/runs"
APPROVALS = "/api/v1/environments/dev/approvals"


# --- 404 and 405 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/environments/nope", None),
        ("GET", "/api/v1/runs?env=nope", None),
        ("POST", "/api/v1/environments/nope/runs", {"action": "plan"}),
        ("POST", "/api/v1/environments/nope/drift", None),
        ("POST", "/api/v1/environments/nope/approvals", {}),
    ],
)
def test_unknown_environment_is_404(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json() == {"error": "unknown environment 'nope'"}


def test_unknown_run_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/runs/run-404")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown run 'run-404'"}


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/docs", "/openapi.json", "/redoc", "/"])
def test_unknown_route_is_404_in_json(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": f"no such route: {path}"}


def test_wrong_method_is_405_with_allow(client: TestClient, fake: FakeControl) -> None:
    response = client.delete("/api/v1/environments/dev")
    assert response.status_code == 405
    assert response.json() == {"error": "method DELETE is not allowed on /api/v1/environments/dev"}
    assert "GET" in response.headers["Allow"]
    assert fake.calls == []


# --- 422 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"action": "deploy"}, "action: Input should be 'plan', 'apply' or 'destroy'"),
        ({"action": "plan", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({}, "action: Field required"),
        ({"action": "plan", "components": "vpc"}, "components: Input should be a valid list"),
        ({"action": "plan", "components": [1]}, "components[0]: Input should be a valid string"),
        ({"action": "plan", "revision": ""}, "revision: String should have at least 1 character"),
        (
            [{"action": "plan"}],
            "body: Input should be a valid dictionary or object to extract fields from",
        ),
    ],
)
def test_malformed_run_request_is_422_naming_the_field(
    client: TestClient, fake: FakeControl, body: Any, error: str
) -> None:
    response = client.post(RUNS, json=body)
    assert response.status_code == 422
    assert response.json() == {"error": error}
    assert fake.calls == []


def test_missing_body_is_422(client: TestClient, fake: FakeControl) -> None:
    response = client.post(RUNS)
    assert response.status_code == 422
    assert response.json() == {"error": "body: Field required"}
    assert fake.calls == []


def test_body_that_is_not_json_is_422(client: TestClient, fake: FakeControl) -> None:
    response = client.post(
        RUNS, content=b"{action: plan", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"].startswith("body: invalid JSON at line 1, column 2: ")
    assert fake.calls == []


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/runs"])
@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten"])
def test_limit_outside_1_to_1000_is_422(
    client: TestClient, fake: FakeControl, path: str, limit: str
) -> None:
    response = client.get(path, params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["error"].startswith("limit: ")
    assert fake.calls == []


@pytest.mark.parametrize("limit", [1, 1000])
def test_limit_bounds_are_allowed(client: TestClient, fake: FakeControl, limit: int) -> None:
    assert client.get("/api/v1/events", params={"limit": limit}).status_code == 200
    assert fake.calls_to("events")[0].kwargs == {"limit": limit, "cursor": None}


def test_malformed_approval_is_422(client: TestClient, fake: FakeControl) -> None:
    response = client.post(APPROVALS, json={"revison": "abc"})
    assert response.status_code == 422
    assert response.json() == {"error": "revison: Extra inputs are not permitted"}
    assert fake.calls == []


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status"), [(InvalidRequestError, 422), (ConflictError, 409)])
def test_refused_run_is_422_or_409_on_conflict(
    client: TestClient,
    fake: FakeControl,
    kind: type[InvalidRequestError | ConflictError],
    status: int,
) -> None:
    fake.refuse_run = kind("unknown component 'dns'")
    response = client.post(RUNS, json={"action": "apply", "components": ["dns"]})
    assert response.status_code == status
    assert response.json() == {"error": "unknown component 'dns'"}


@pytest.mark.parametrize(
    ("kind", "status"), [(ApproverRefusedError, 403), (ApprovalConflictError, 409)]
)
def test_refused_approval_is_403_or_409_on_conflict(
    client: TestClient,
    fake: FakeControl,
    kind: type[ApproverRefusedError | ApprovalConflictError],
    status: int,
) -> None:
    fake.refuse_approval = kind("no promotion is pending")
    response = client.post(APPROVALS, json={"revision": "abc"})
    assert response.status_code == status
    assert response.json() == {"error": "no promotion is pending"}


# --- 413 ---------------------------------------------------------------------------------------

LIMIT = 1000


def run_body(size: int) -> bytes:
    """A valid run request of exactly `size` bytes (padded with spaces, which JSON allows)."""
    body = json.dumps({"action": "plan"}).encode()
    return body + b" " * (size - len(body))


@pytest.fixture
def limited(make_client: MakeClient) -> TestClient:
    return make_client(max_body=LIMIT, webhook_secret=b"s")


def test_body_at_the_limit_is_accepted(limited: TestClient, fake: FakeControl) -> None:
    headers = {"Content-Type": "application/json"}
    response = limited.post(RUNS, content=run_body(LIMIT), headers=headers)
    assert response.status_code == 202
    assert len(fake.calls_to("submit_run")) == 1


def test_declared_length_over_the_limit_is_413(limited: TestClient, fake: FakeControl) -> None:
    headers = {"Content-Type": "application/json"}
    response = limited.post(RUNS, content=run_body(LIMIT + 1), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"error": f"request body is larger than {LIMIT} bytes"}
    assert fake.calls == []


@pytest.mark.parametrize("path", [RUNS, "/api/v1/webhooks/github"])
def test_chunked_body_over_the_limit_is_413(
    limited: TestClient, fake: FakeControl, path: str
) -> None:
    def chunks() -> Iterator[bytes]:
        yield run_body(LIMIT + 1)

    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    response = limited.post(path, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"error": f"request body is larger than {LIMIT} bytes"}
    assert fake.calls == []


def asgi_post(app: Starlette, path: str, chunks: list[bytes], headers: dict[str, str]) -> Any:
    """POST straight through ASGI, streaming `chunks` one message each, as a server would."""
    pending = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (k.lower().encode(), v.encode()) for k, v in {"Host": "testserver", **headers}.items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return sent, pending


def test_streamed_body_stops_being_read_past_the_limit(fake: FakeControl) -> None:
    app = create_app(
        fake, tokens=Tokens.none(), webhook_secret=None, rules=TEST_RULES, max_body=LIMIT
    )
    chunks = [b" " * 400] * 4 + [json.dumps({"action": "plan"}).encode()]
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    sent, unread = asgi_post(app, RUNS, chunks, headers)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {"error": f"request body is larger than {LIMIT} bytes"}
    assert len(unread) == 2  # the third chunk crossed the limit; the rest was never read
    assert fake.calls == []


def test_declared_length_is_refused_before_reading(fake: FakeControl) -> None:
    app = create_app(
        fake, tokens=Tokens.none(), webhook_secret=None, rules=TEST_RULES, max_body=LIMIT
    )
    headers = {"Content-Type": "application/json", "Content-Length": str(LIMIT * 5)}
    sent, unread = asgi_post(app, RUNS, [b" " * LIMIT * 5], headers)
    assert sent[0]["status"] == 413
    assert len(unread) == 1


# --- 500 ---------------------------------------------------------------------------------------


def test_a_crash_is_an_opaque_logged_500(
    client: TestClient, fake: FakeControl, caplog: pytest.LogCaptureFixture
) -> None:
    fake.crash = RuntimeError("disk I/O error at /var/lib/gitopsd/state.db")
    with caplog.at_level(logging.ERROR, logger="gitopsd.api.middleware"):
        response = client.get("/api/v1/environments")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    (record,) = caplog.records
    assert record.getMessage() == "internal error on GET /api/v1/environments"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_a_crash_does_not_stop_the_server(client: TestClient, fake: FakeControl) -> None:
    fake.crash = RuntimeError("once")
    assert client.get("/readyz").status_code == 500
    fake.crash = None
    assert client.get("/readyz").status_code == 200
