"""Hostile JSON (issue 17 item 2): 100,000 levels of nesting or a 100,000-digit integer, in a
request body or a signed webhook, is a 422 `{"error"}` in bounded time and memory, where it
was a 500 (RecursionError, or Python's own limit on integer digits)."""

from __future__ import annotations

import codecs
import time
import tracemalloc

import pytest

from gitopsd.api import webhooks
from tests.api.conftest import MakeClient, TestClient
from tests.api.fake_control import FakeControl

RUNS = "/api/v1/environments/dev/runs"
SECRET = b"webhook-secret"
HOSTILE = {
    "deep arrays": b'{"action": "plan", "components": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "deep objects": b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
    "long integer": b'{"action": "plan", "n": ' + b"9" * 100_000 + b"}",
    "long negative": b'{"ref": -' + b"1" * 100_000 + b"}",
}


def answered_within(seconds: float, send: object) -> tuple[object, float, int]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = send()  # type: ignore[operator]
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < seconds
    return response, elapsed, peak


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_request_body_is_422(client: TestClient, fake: FakeControl, name: str) -> None:
    response, _, peak = answered_within(5, lambda: client.post(RUNS, content=HOSTILE[name]))
    assert response.status_code == 422  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error in (
        "body: nested deeper than 64 levels",
        "body: a number of 100000 digits (at most 100)",
    )
    assert peak < 8 * 1024 * 1024
    assert fake.calls == []


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_signed_webhook_is_422(
    make_client: MakeClient, fake: FakeControl, name: str
) -> None:
    client = make_client(webhook_secret=SECRET)
    body = HOSTILE[name]
    headers = {
        webhooks.EVENT_HEADER: "push",
        webhooks.SIGNATURE_HEADER: webhooks.sign(SECRET, body),
    }
    response, _, peak = answered_within(
        5, lambda: client.post("/api/v1/webhooks/github", content=body, headers=headers)
    )
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert response.json()["error"].startswith("push payload: ")  # type: ignore[attr-defined]
    assert peak < 8 * 1024 * 1024
    assert fake.calls_to("request_fetch") == []


def test_deep_but_reasonable_json_still_parses(client: TestClient, fake: FakeControl) -> None:
    nested = "[" * 60 + "]" * 60
    body = '{"action": "plan", "components": ["a[{", "' + nested + '"]}'
    assert client.post(RUNS, content=body).status_code == 202
    assert fake.calls_to("submit_run")[0].kwargs["components"] == ["a[{", nested]
    too_deep = '{"action": "plan", "x": ' + "[" * 64 + "]" * 64 + "}"  # 65 with the object
    response = client.post(RUNS, content=too_deep)
    assert response.json() == {"error": "body: nested deeper than 64 levels"}


BODY_ROUTES = [
    ("POST", RUNS),
    ("POST", "/api/v1/environments/dev/approvals"),
    ("POST", "/api/v1/environments/dev/suspension"),
]
DUPLICATES = {
    b'{"action": "plan", "action": "destroy"}': "body: duplicate key 'action'",
    b'{"action": "plan", "x": [{"a": 1, "a": 2}]}': "body: duplicate key 'a'",
}


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("body", DUPLICATES)
def test_a_key_given_twice_is_422_naming_it(
    client: TestClient, fake: FakeControl, method: str, path: str, body: bytes
) -> None:
    response = client.request(method, path, content=body)
    assert response.status_code == 422
    assert response.json() == {"error": DUPLICATES[body]}
    assert fake.calls == []


def test_a_signed_webhook_with_a_key_given_twice_is_422(
    make_client: MakeClient, fake: FakeControl
) -> None:
    client = make_client(webhook_secret=SECRET)
    body = b'{"ref": "refs/heads/other", "ref": "refs/heads/main"}'
    headers = {
        webhooks.EVENT_HEADER: "push",
        webhooks.SIGNATURE_HEADER: webhooks.sign(SECRET, body),
    }
    response = client.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert response.status_code == 422
    assert "duplicate key 'ref'" in response.json()["error"]
    assert fake.calls_to("request_fetch") == []


NO_FIELD_ROUTES = [
    ("POST", "/api/v1/environments/dev/drift"),
    ("POST", "/api/v1/runs/run-1/cancel"),
    ("DELETE", "/api/v1/environments/dev/suspension"),
]
NOT_AN_EMPTY_OBJECT = {
    **HOSTILE,
    "not UTF-8": b'{"\xff\xfe": 1}',
    "an array": b"[1, 2]",
    "a field": b'{"action": "destroy"}',
    "not JSON": b"plan",
}


@pytest.mark.parametrize(("method", "path"), NO_FIELD_ROUTES)
@pytest.mark.parametrize("name", NOT_AN_EMPTY_OBJECT)
def test_a_route_without_fields_refuses_any_body_but_an_empty_object(
    client: TestClient, fake: FakeControl, method: str, path: str, name: str
) -> None:
    response = client.request(method, path, content=NOT_AN_EMPTY_OBJECT[name])
    assert response.status_code == 422
    assert response.json()["error"].startswith(("body: ", "action: "))
    assert fake.calls == []


@pytest.mark.parametrize("body", [b"", b"{}", b" { } "])
def test_a_route_without_fields_takes_no_body_or_an_empty_object(
    client: TestClient, body: bytes
) -> None:
    assert client.post("/api/v1/environments/dev/drift", content=body).status_code == 202
    response = client.request("DELETE", "/api/v1/environments/dev/suspension", content=body)
    assert response.status_code == 200


def test_a_refusal_before_the_body_is_read_closes_the_connection(client: TestClient) -> None:
    body = b'{"action": "plan"}'
    refused = client.post(RUNS, content=body, headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    assert refused.headers["connection"] == "close"
    answered = client.post(RUNS, content=body)
    assert answered.status_code == 202
    assert "connection" not in answered.headers


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "apply", "components": ["\\ud800"]}',
        b'{"action": "plan", "revision": "main\\udc80"}',
        b'{"action": "plan", "\\ud800": 1}',
    ],
)
def test_a_string_of_half_a_character_is_422(
    client: TestClient, fake: FakeControl, body: bytes
) -> None:
    """JSON's escape of a lone surrogate parses, but is not text: stored or put in an error
    answer (which names the component) it failed to encode, a 500."""
    response = client.post(RUNS, content=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith("body: invalid JSON: a string holds a lone")
    assert fake.calls == []


def not_utf8_json(text: str) -> dict[str, bytes]:
    """`text` as json.loads reads it but RFC 8259 (section 8.1) forbids between systems."""
    return {
        "a UTF-8 byte-order mark": codecs.BOM_UTF8 + text.encode(),
        "UTF-16 with its mark": text.encode("utf-16"),
        "UTF-16 without a mark": text.encode("utf-16-be"),
        "UTF-32 with its mark": text.encode("utf-32"),
        "UTF-32 without a mark": text.encode("utf-32-le"),
    }


PLAN = '{"action": "plan"}'
PUSH = '{"ref": "refs/heads/main", "after": "abc"}'
MUST_BE_UTF8 = "must be UTF-8 JSON without a byte-order mark"


@pytest.mark.parametrize("name", not_utf8_json(PLAN))
def test_a_body_not_in_utf8_or_with_a_byte_order_mark_is_422(
    client: TestClient, fake: FakeControl, name: str
) -> None:
    """Python's json guessed the encoding of these and acted on them, where a strict reader
    in front (a proxy, an audit log) reads something else or nothing."""
    response = client.post(RUNS, content=not_utf8_json(PLAN)[name])
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"body: {MUST_BE_UTF8} (")
    assert fake.calls == []
    assert client.post(RUNS, content=PLAN.encode()).status_code == 202


@pytest.mark.parametrize("name", not_utf8_json(PUSH))
def test_a_signed_webhook_not_in_utf8_or_with_a_byte_order_mark_is_422(
    make_client: MakeClient, fake: FakeControl, name: str
) -> None:
    client = make_client(webhook_secret=SECRET)
    body = not_utf8_json(PUSH)[name]
    headers = {
        webhooks.EVENT_HEADER: "push",
        webhooks.SIGNATURE_HEADER: webhooks.sign(SECRET, body),
    }
    response = client.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"push payload: {MUST_BE_UTF8} (")
    assert fake.calls_to("request_fetch") == []
