"""GitHub webhooks: the signature is GitHub's (checked against its documented test vector), and a
verified push to the tracked branch is the only delivery that makes the daemon fetch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitopsd.api import webhooks
from gitopsd.api.auth import TokenEntry, Tokens, hash_token
from tests.api.conftest import MakeClient, TestClient
from tests.api.fake_control import FakeControl

# GitHub docs, "Validating webhook deliveries", section "Testing the webhook payload validation".
GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_PAYLOAD = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SECRET = b"webhook-secret"
URL = "/api/v1/webhooks/github"
AFTER = "0123456789abcdef0123456789abcdef01234567"


def test_githubs_documented_test_vector_verifies() -> None:
    assert webhooks.sign(GITHUB_SECRET, GITHUB_PAYLOAD) == GITHUB_SIGNATURE
    assert webhooks.verify_signature(GITHUB_SECRET, GITHUB_PAYLOAD, GITHUB_SIGNATURE)


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        (GITHUB_SECRET, b"Hello, World?", GITHUB_SIGNATURE),  # tampered body
        (b"another secret", GITHUB_PAYLOAD, GITHUB_SIGNATURE),  # another secret
        (GITHUB_SECRET, GITHUB_PAYLOAD, GITHUB_SIGNATURE.removeprefix("sha256=")),  # no prefix
        (GITHUB_SECRET, GITHUB_PAYLOAD, GITHUB_SIGNATURE.replace("sha256", "sha1")),
        (GITHUB_SECRET, GITHUB_PAYLOAD, GITHUB_SIGNATURE.upper()),
        (GITHUB_SECRET, GITHUB_PAYLOAD, GITHUB_SIGNATURE + "é"),  # not ASCII: still just False
        (GITHUB_SECRET, GITHUB_PAYLOAD, ""),
        (GITHUB_SECRET, GITHUB_PAYLOAD, None),
    ],
)
def test_anything_else_does_not_verify(secret: bytes, body: bytes, header: str | None) -> None:
    assert not webhooks.verify_signature(secret, body, header)


def deliver(
    client: TestClient,
    event: str | None,
    payload: Any = None,
    *,
    body: bytes | None = None,
    signature: str | None = None,
    secret: bytes = SECRET,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a delivery as GitHub would: signed with `secret` unless `signature` is given."""
    raw = body if body is not None else json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if event is not None:
        sent[webhooks.EVENT_HEADER] = event
    sent[webhooks.SIGNATURE_HEADER] = signature or webhooks.sign(secret, raw)
    return client.post(URL, content=raw, headers=sent)


@pytest.fixture
def hooked(make_client: MakeClient) -> TestClient:
    return make_client(webhook_secret=SECRET)


def push(ref: str) -> dict[str, Any]:
    return {"ref": ref, "before": "0" * 40, "after": AFTER, "commits": []}


def test_ping_with_a_good_signature_answers_ok(hooked: TestClient, fake: FakeControl) -> None:
    response = deliver(hooked, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "zen": "Keep it logically awesome."}
    assert fake.calls_to("request_fetch") == []


def test_push_to_the_tracked_branch_fetches_once(hooked: TestClient, fake: FakeControl) -> None:
    response = deliver(hooked, "push", push("refs/heads/main"))
    assert response.status_code == 202
    assert response.json() == {"accepted": True}
    assert [c.args for c in fake.calls_to("request_fetch")] == [(f"webhook push {AFTER}",)]
    assert not fake.calls_to("request_fetch")[0].on_event_loop


@pytest.mark.parametrize("ref", ["refs/heads/feature", "refs/tags/main", "refs/heads/main2"])
def test_push_elsewhere_is_ignored_without_a_fetch(
    hooked: TestClient, fake: FakeControl, ref: str
) -> None:
    response = deliver(hooked, "push", push(ref))
    assert response.status_code == 202
    assert response.json() == {"ignored": f"push to {ref}, not to the tracked refs/heads/main"}
    assert fake.calls_to("request_fetch") == []


@pytest.mark.parametrize("event", ["issues", "pull_request", None])
def test_other_events_are_ignored(hooked: TestClient, fake: FakeControl, event: str | None) -> None:
    response = deliver(hooked, event, {"action": "opened"})
    assert response.status_code == 202
    assert set(response.json()) == {"ignored"}
    assert fake.calls_to("request_fetch") == []


def test_tampered_body_is_401(hooked: TestClient, fake: FakeControl) -> None:
    good = json.dumps(push("refs/heads/feature")).encode()
    tampered = good.replace(b"feature", b"main")
    response = deliver(hooked, "push", body=tampered, signature=webhooks.sign(SECRET, good))
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong X-Hub-Signature-256 signature"}
    assert fake.calls == []


def test_signature_with_another_secret_is_401(hooked: TestClient, fake: FakeControl) -> None:
    response = deliver(hooked, "push", push("refs/heads/main"), secret=b"guessed")
    assert response.status_code == 401
    assert fake.calls == []


def test_missing_signature_is_401(hooked: TestClient, fake: FakeControl) -> None:
    raw = json.dumps(push("refs/heads/main")).encode()
    headers = {webhooks.EVENT_HEADER: "push", "Content-Type": "application/json"}
    response = hooked.post(URL, content=raw, headers=headers)
    assert response.status_code == 401
    assert fake.calls == []


def test_webhooks_are_disabled_without_a_secret(client: TestClient, fake: FakeControl) -> None:
    response = deliver(client, "push", push("refs/heads/main"))
    assert response.status_code == 403
    assert response.json() == {"error": "webhooks are disabled: set GITOPSD_WEBHOOK_SECRET"}
    assert fake.calls == []


@pytest.mark.parametrize("body", [b"{not json", b"payload=%7B%7D", b"[1, 2]", b'{"after": "x"}'])
def test_signed_push_that_is_not_a_json_push_is_422(
    hooked: TestClient, fake: FakeControl, body: bytes
) -> None:
    response = deliver(hooked, "push", body=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith("push payload")
    assert fake.calls_to("request_fetch") == []


def test_the_signature_replaces_bearer_tokens(make_client: MakeClient, fake: FakeControl) -> None:
    """GitHub cannot send a bearer token: with a tokens file, a signed push still gets in."""
    entry = TokenEntry(name="ops", email="o@x", roles=("read",), token_sha256=hash_token("t"))
    hooked = make_client(tokens=Tokens([entry]), webhook_secret=SECRET)
    assert deliver(hooked, "push", push("refs/heads/main")).status_code == 202
    assert len(fake.calls_to("request_fetch")) == 1


def test_a_bearer_token_does_not_replace_the_signature(hooked: TestClient) -> None:
    raw = json.dumps(push("refs/heads/main")).encode()
    headers = {webhooks.EVENT_HEADER: "push", "Authorization": "Bearer t"}
    assert hooked.post(URL, content=raw, headers=headers).status_code == 401


def test_the_tracked_branch_is_the_daemons(hooked: TestClient, fake: FakeControl) -> None:
    fake.tracked_branch = "release"
    assert deliver(hooked, "push", push("refs/heads/main")).json()["ignored"]
    assert deliver(hooked, "push", push("refs/heads/release")).json() == {"accepted": True}
    assert len(fake.calls_to("request_fetch")) == 1


TWICE = [
    (webhooks.SIGNATURE_HEADER, "sha256=" + "0" * 64),
    ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    (webhooks.EVENT_HEADER, "ping"),
]


@pytest.mark.parametrize(("name", "other"), TWICE, ids=[name for name, _ in TWICE])
def test_a_webhook_header_given_twice_differently_is_400_before_the_signature(
    hooked: TestClient, fake: FakeControl, name: str, other: str
) -> None:
    """The route reads the first copy; a proxy that logs or checks deliveries may read the
    last, and the signature does not cover headers: such a request is refused unread."""
    raw = json.dumps(push("refs/heads/main")).encode()
    signed = {
        webhooks.EVENT_HEADER: "push",
        webhooks.SIGNATURE_HEADER: webhooks.sign(SECRET, raw),
        "X-GitHub-Delivery": "5d1f2d5e-0c54-11ef-9f1a-1a2b3c4d5e6f",
    }
    headers = [*signed.items(), (name, other)]
    response = hooked.post(URL, content=raw, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": f"conflicting {name} headers: send one"}
    unsigned = [(key, value) for key, value in headers if key != webhooks.SIGNATURE_HEADER]
    if name != webhooks.SIGNATURE_HEADER:
        assert hooked.post(URL, content=raw, headers=unsigned).status_code == 400  # not 401
    assert fake.calls == []
    assert hooked.post(URL, content=raw, headers=signed).status_code == 202


def test_a_webhook_header_given_twice_alike_reads_one_way(
    hooked: TestClient, fake: FakeControl
) -> None:
    """As for `Origin` (guards, rule 0): an exact copy is read the same by every reader."""
    raw = json.dumps(push("refs/heads/main")).encode()
    signature = (webhooks.SIGNATURE_HEADER, webhooks.sign(SECRET, raw))
    headers = [(webhooks.EVENT_HEADER, "push"), signature, signature]
    assert hooked.post(URL, content=raw, headers=headers).status_code == 202
    assert len(fake.calls_to("request_fetch")) == 1
