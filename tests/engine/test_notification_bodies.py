"""The two notification bodies, field by field, as docs/notifications.md documents them."""

from __future__ import annotations

from datetime import UTC, datetime

from gitopsd.engine import notification_bodies
from gitopsd.engine.announcements import Announcement

SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
FAILED = Announcement(
    kind="run_failed",
    event_id=812,
    at=datetime(2026, 12, 1, 12, 30, 5, tzinfo=UTC),
    environment="prod",
    message="apply failed: failed: dns; rolled back to 0f0f0f0f0f0f",
    actor="alice",
    revision=SHA,
    run_id="20261201T123000-ab12cd",
    action="apply",
    error="failed: dns; rolled back to 0f0f0f0f0f0f",
)
RUN_URL = "https://gitopsd.example.com/api/v1/runs/20261201T123000-ab12cd"


def test_the_json_body_has_every_documented_field() -> None:
    body = notification_bodies.render(
        "json", FAILED, notification="audit", public_url="https://gitopsd.example.com/"
    )
    assert body == {
        "id": 812,
        "event": "run_failed",
        "notification": "audit",
        "environment": "prod",
        "revision": SHA,
        "run_id": "20261201T123000-ab12cd",
        "run_url": RUN_URL,
        "action": "apply",
        "summary": "prod: apply of 1a2b3c4d5e6f failed: dns; rolled back to 0f0f0f0f0f0f",
        "message": "apply failed: failed: dns; rolled back to 0f0f0f0f0f0f",
        "error": "failed: dns; rolled back to 0f0f0f0f0f0f",
        "components": [],
        "actor": "alice",
        "at": "2026-12-01T12:30:05Z",
    }


def test_fields_that_do_not_apply_are_null_or_empty_not_missing() -> None:
    drift = Announcement(
        kind="drift_detected", event_id=9, at=FAILED.at, environment="dev", message="m",
        actor="gitopsd", revision=None, components=("k8s",),
    )  # fmt: skip
    body = notification_bodies.render("json", drift, notification="n", public_url="http://x")
    every = notification_bodies.json_body(FAILED, notification="n", run_url=None)
    assert body.keys() == every.keys()
    assert (body["run_id"], body["run_url"], body["revision"], body["action"]) == (None,) * 4
    assert body["components"] == ["k8s"]


def test_the_slack_body_has_a_fallback_text_and_blocks_with_the_run_link() -> None:
    body = notification_bodies.render(
        "slack", FAILED, notification="chat", public_url="https://gitopsd.example.com"
    )
    headline = "prod: apply of 1a2b3c4d5e6f failed: dns; rolled back to 0f0f0f0f0f0f"
    assert body == {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f":x: {headline}"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"revision `1a2b3c4d5e6f` · run <{RUN_URL}|20261201T123000-ab12cd>"
                        " · by alice · 2026-12-01 12:30:05 UTC",
                    }
                ],
            },
        ],
    }


def test_slack_markup_in_a_message_is_escaped_and_long_text_is_cut() -> None:
    hostile = Announcement(
        kind="run_failed", event_id=1, at=FAILED.at, environment="dev", message="m",
        actor="<!channel> & co", revision=SHA, action="apply",
        error="<!here> exit 1 " + "<&>" * 2000,
    )  # fmt: skip
    body = notification_bodies.slack_body(hostile, run_url=None)
    section = body["blocks"][0]["text"]["text"]
    context = body["blocks"][1]["elements"][0]["text"]
    assert "<!" not in section + context + body["text"]
    assert "&lt;!here&gt;" in section and "by &lt;!channel&gt; &amp; co" in context
    assert len(body["text"]) <= notification_bodies.SLACK_TEXT_LIMIT  # even escaped
    assert body["text"].endswith("…") and len(section) < 3000
    assert "run " not in context  # no run, no link
