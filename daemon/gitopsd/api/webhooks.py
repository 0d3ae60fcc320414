"""GitHub webhooks: prove a delivery came from GitHub, then decide what it asks of the daemon.

A push to the tracked branch is the one delivery that matters: it makes the daemon fetch the
remote at once instead of at the next poll. The route (`gitopsd.api.routes`) checks the signature
before the body is parsed; `respond_to` then decides without side effects, so these rules are
tested without a server, and the route only carries out the `Reply`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from gitopsd.engine import json_limits
from gitopsd.errors import InvalidPayloadError, JsonLimitError

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"


@dataclass(frozen=True)
class Reply:
    """What to answer GitHub, and why to fetch (None: do not fetch)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    fetch_reason: str | None = None


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` signs `body` with `secret`, compared in constant time."""
    if header is None:
        return False
    expected = sign(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def respond_to(event: str | None, body: bytes, *, branch: str) -> Reply:
    """The reply to a verified delivery of `event` while the daemon tracks `branch`."""
    if event == "ping":
        return Reply(200, {"ok": True, "zen": _payload(event, body).get("zen")})
    if event == "push":
        return _respond_to_push(_payload(event, body), branch=branch)
    why = f"event {event!r} is not used" if event else f"no {EVENT_HEADER} header"
    return Reply(202, {"ignored": f"{why}: gitopsd acts on push and ping only"})


def _respond_to_push(payload: dict[str, Any], *, branch: str) -> Reply:
    ref, after = payload.get("ref"), payload.get("after")
    if not isinstance(ref, str):
        raise InvalidPayloadError("push payload: 'ref' must be a string")
    tracked = f"refs/heads/{branch}"
    if ref != tracked:
        return Reply(202, {"ignored": f"push to {ref}, not to the tracked {tracked}"})
    reason = f"webhook push {after}" if isinstance(after, str) else "webhook push"
    return Reply(202, {"accepted": True}, fetch_reason=reason)


def _payload(event: str, body: bytes) -> dict[str, Any]:
    """The delivery's JSON object; a form-encoded delivery is refused with the fix to make."""
    try:
        payload = json_limits.parse(body)
    except JsonLimitError as error:
        raise InvalidPayloadError(
            f"{event} payload: {error} (the webhook's content type must be application/json)"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidPayloadError(f"{event} payload must be a JSON object")
    return payload
