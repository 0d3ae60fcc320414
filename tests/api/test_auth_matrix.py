"""Every API endpoint against every kind of caller: no token, a wrong one, one lacking the
endpoint's role, one holding it; and open mode, where everyone is `local` with every role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gitopsd.api.auth import Role, TokenEntry, Tokens, hash_token
from gitopsd.runtime.control import Identity
from tests.api.conftest import MakeClient, TestClient
from tests.api.fake_control import FakeControl

ALL_ROLES: tuple[Role, ...] = ("read", "operate", "approve")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    role: Role
    success: int
    control_method: str
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("GET", "/api/v1/environments", "read", 200, "status"),
    Endpoint("GET", "/api/v1/environments/dev", "read", 200, "status"),
    Endpoint("GET", "/api/v1/runs?env=dev", "read", 200, "runs"),
    Endpoint("GET", "/api/v1/runs/run-1", "read", 200, "run"),
    Endpoint("GET", "/api/v1/runs/run-1/logs", "read", 200, "run_logs"),
    Endpoint("GET", "/api/v1/events?env=dev&limit=5", "read", 200, "events"),
    Endpoint(
        "POST", "/api/v1/environments/dev/runs", "operate", 202, "submit_run", {"action": "plan"}
    ),
    Endpoint("POST", "/api/v1/environments/dev/drift", "operate", 202, "submit_drift_check"),
    Endpoint(
        "POST", "/api/v1/environments/dev/approvals", "approve", 200, "approve", {"revision": "abc"}
    ),
    Endpoint(
        "POST", "/api/v1/environments/dev/suspension", "operate", 200, "suspend", {"reason": "x"}
    ),
    Endpoint("DELETE", "/api/v1/environments/dev/suspension", "operate", 200, "resume"),
    Endpoint("POST", "/api/v1/runs/run-2/cancel", "operate", 202, "cancel"),
]


def token_of(name: str) -> str:
    return f"secret-token-of-{name}"


def entry(name: str, roles: tuple[Role, ...]) -> TokenEntry:
    return TokenEntry(
        name=name, email=f"{name}@example.com", roles=roles, token_sha256=hash_token(token_of(name))
    )


# For each role: a token holding only it, and one holding the two others (no role implies another).
TOKENS = Tokens(
    [entry(f"only-{role}", (role,)) for role in ALL_ROLES]
    + [entry(f"all-but-{role}", tuple(r for r in ALL_ROLES if r != role)) for role in ALL_ROLES]
)


def call(client: TestClient, endpoint: Endpoint, token: str | None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.request(endpoint.method, endpoint.path, json=endpoint.body, headers=headers)


@pytest.fixture
def guarded(make_client: MakeClient) -> TestClient:
    return make_client(tokens=TOKENS)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_no_token_is_401_and_never_reaches_the_daemon(
    guarded: TestClient, fake: FakeControl, endpoint: Endpoint
) -> None:
    response = call(guarded, endpoint, None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "missing bearer token"}
    assert fake.calls == []


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_wrong_token_is_401(guarded: TestClient, fake: FakeControl, endpoint: Endpoint) -> None:
    response = call(guarded, endpoint, "not-a-known-token")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "invalid bearer token"}
    assert fake.calls == []


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_token_without_the_role_is_403_naming_it(
    guarded: TestClient, fake: FakeControl, endpoint: Endpoint
) -> None:
    response = call(guarded, endpoint, token_of(f"all-but-{endpoint.role}"))
    assert response.status_code == 403
    assert response.json() == {
        "error": f"'all-but-{endpoint.role}' does not have the '{endpoint.role}' role"
    }
    assert fake.calls == []


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_token_with_the_role_is_served(
    guarded: TestClient, fake: FakeControl, endpoint: Endpoint
) -> None:
    response = call(guarded, endpoint, token_of(f"only-{endpoint.role}"))
    assert response.status_code == endpoint.success, response.text
    assert [c.method for c in fake.calls] == [endpoint.control_method]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_open_mode_serves_everything_as_local(
    client: TestClient, fake: FakeControl, endpoint: Endpoint
) -> None:
    response = call(client, endpoint, None)
    assert response.status_code == endpoint.success, response.text
    identity = fake.calls_to(endpoint.control_method)[0].kwargs.get("identity")
    assert identity in (None, Identity("local"))  # reads take no identity


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.method != "GET"], ids=str)
def test_writes_are_made_as_the_token_owner(
    guarded: TestClient, fake: FakeControl, endpoint: Endpoint
) -> None:
    call(guarded, endpoint, token_of(f"only-{endpoint.role}"))
    (recorded,) = fake.calls_to(endpoint.control_method)
    name = f"only-{endpoint.role}"
    assert recorded.kwargs["identity"] == Identity(name, f"{name}@example.com")


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.method != "GET"], ids=str)
def test_open_mode_writes_are_made_as_local(
    client: TestClient, fake: FakeControl, endpoint: Endpoint
) -> None:
    call(client, endpoint, None)
    (recorded,) = fake.calls_to(endpoint.control_method)
    assert recorded.kwargs["identity"] == Identity("local")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_need_no_token(guarded: TestClient, path: str) -> None:
    assert guarded.get(path).status_code == 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(guarded: TestClient, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {token_of('only-read')}"}
    assert guarded.get("/api/v1/environments", headers=headers).status_code == 200


def test_a_token_in_another_scheme_is_not_accepted(guarded: TestClient) -> None:
    headers = {"Authorization": f"Basic {token_of('only-read')}"}
    response = guarded.get("/api/v1/environments", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "missing bearer token"}


def test_the_stored_hash_is_not_a_token(guarded: TestClient) -> None:
    headers = {"Authorization": f"Bearer {hash_token(token_of('only-read'))}"}
    assert guarded.get("/api/v1/environments", headers=headers).status_code == 401


def test_unauthenticated_beats_unknown_environment(guarded: TestClient) -> None:
    """A caller without a token learns nothing, not even which environments exist."""
    assert guarded.get("/api/v1/environments/nope").status_code == 401
