"""Fixtures for the API tests: a FakeControl and a TestClient over the real app."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest

with warnings.catch_warnings():
    # Starlette 1.x wants `httpx2` for its TestClient and warns once, at import, when it finds
    # only `httpx` (a dev dependency). The client works the same; tests import it from here.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from gitopsd.api.app import create_app
from gitopsd.api.auth import Tokens
from gitopsd.api.guards import RequestRules
from gitopsd.engine.ports import Clock
from tests.api.fake_control import FakeControl

__all__ = ["JSON", "TEST_RULES", "MakeClient", "TestClient"]

# TestClient sends `Host: testserver`: the app under test listens there, as far as it knows.
TEST_RULES = RequestRules.for_listen("testserver", 80)
# What every API client sends with a request that changes something (guards: 415 without).
JSON = {"Content-Type": "application/json"}

MakeClient = Callable[..., TestClient]


@pytest.fixture
def fake() -> FakeControl:
    return FakeControl()


@pytest.fixture
def make_client(fake: FakeControl) -> Iterator[MakeClient]:
    """`make_client(tokens=..., webhook_secret=..., max_body=..., clock=...)`: open mode; the
    client sends `Content-Type: application/json` unless a request says otherwise."""
    clients: list[TestClient] = []

    def _make(
        *,
        tokens: Tokens | None = None,
        webhook_secret: bytes | None = None,
        max_body: int = 1_048_576,
        clock: Clock | None = None,
    ) -> TestClient:
        app = create_app(
            fake,
            tokens=tokens or Tokens.none(),
            webhook_secret=webhook_secret,
            rules=TEST_RULES,
            max_body=max_body,
            clock=clock,
        )
        client = TestClient(app, headers=JSON)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """Open mode (no tokens file), no webhook secret."""
    return make_client()
