"""The bodies a notification posts: gitopsd's own JSON, or a Slack incoming-webhook message.

Pipeline: announce -> **render** -> deliver. Pure functions of an announcement, so a test (or
a user reading docs/notifications.md) sees exactly what a receiver gets. The JSON body is the
stable one, for programs: every field is always present (null when it does not apply) and
fields are only ever added. The Slack body is for people: a fallback `text` for
notifications, and Block Kit `blocks` for the channel.
"""

from __future__ import annotations

from typing import Any

from gitopsd.engine.announcements import Announcement, shorten

# Slack refuses a section text over 3000 characters (an error message can be long): leave
# room for the icon.
SLACK_TEXT_LIMIT = 2900
ICONS = {
    "run_started": ":arrow_forward:",
    "run_failed": ":x:",
    "run_cancelled": ":heavy_minus_sign:",
    "environment_verified": ":white_check_mark:",
    "approval_pending": ":raised_hand:",
    "drift_detected": ":warning:",
}


def run_url(public_url: str, run_id: str | None) -> str | None:
    """Where the API shows the run: `<public url>/api/v1/runs/<id>`."""
    return f"{public_url.rstrip('/')}/api/v1/runs/{run_id}" if run_id else None


def render(
    format_: str, announcement: Announcement, *, notification: str, public_url: str
) -> dict[str, Any]:
    """The body of `notification` (its `format`: json or slack) for `announcement`."""
    url = run_url(public_url, announcement.run_id)
    if format_ == "slack":
        return slack_body(announcement, run_url=url)
    return json_body(announcement, notification=notification, run_url=url)


def json_body(
    announcement: Announcement, *, notification: str, run_url: str | None
) -> dict[str, Any]:
    """gitopsd's generic body (fields documented in docs/notifications.md)."""
    return {
        "id": announcement.event_id,
        "event": announcement.kind,
        "notification": notification,
        "environment": announcement.environment,
        "revision": announcement.revision,
        "run_id": announcement.run_id,
        "run_url": run_url,
        "action": announcement.action,
        "summary": announcement.headline(),
        "message": announcement.message,
        "error": announcement.error,
        "components": list(announcement.components),
        "actor": announcement.actor,
        "at": announcement.at.isoformat().replace("+00:00", "Z"),
    }


def slack_body(announcement: Announcement, *, run_url: str | None) -> dict[str, Any]:
    """`{"text", "blocks"}`: a section with the headline, a context line with the details."""
    headline = fit(announcement.headline(), SLACK_TEXT_LIMIT)
    details = [f"revision `{escape(announcement.short_revision)}`"]
    if announcement.run_id:
        run = escape(announcement.run_id)
        details.append(f"run <{run_url}|{run}>" if run_url else f"run {run}")
    details.append(f"by {escape(announcement.actor)}")
    details.append(announcement.at.strftime("%Y-%m-%d %H:%M:%S UTC"))
    section = f"{ICONS[announcement.kind]} {headline}"
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(details)}]},
        ],
    }


def fit(text: str, limit: int) -> str:
    """`text` escaped, on one line, and at most `limit` long even when escaping lengthens it."""
    cut = limit
    while len(escaped := escape(shorten(text, cut))) > limit:
        cut = min(cut - 1, cut * limit // len(escaped))  # shrinks in proportion
    return escaped


def escape(text: str) -> str:
    """Slack reads `&`, `<` and `>` as markup (`<!channel>` pings everyone): escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
