"""The commit-status listener: what it asks the GitHub client for, and that a refusal is logged
and counted, never raised into the outbox (or a run)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from gitopsd.engine.announcements import Announcement
from gitopsd.runtime.notifications.commit_statuses import CommitStatuses, CommitStatusPoster
from tests.runtime.statuses import Posted, RecordingStatuses

SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


def announcement(kind: Any, *, action: str = "apply") -> Announcement:
    return Announcement(
        kind=kind, event_id=1, at=datetime(2026, 12, 1, tzinfo=UTC), environment="staging",
        message="m", actor="gitopsd", revision=SHA, run_id="run-9", action=action,
    )  # fmt: skip


def poster(client: CommitStatuses, counted: list[str]) -> CommitStatusPoster:
    return CommitStatusPoster(
        client,
        repository="octo-org/infra",
        public_url="https://gitopsd.example.com/",
        count=counted.append,
    )


def test_an_apply_run_posts_pending_then_success_with_a_link_to_the_run() -> None:
    client, counted = RecordingStatuses(), list[str]()
    post = poster(client, counted)
    post(announcement("run_started"))
    post(announcement("approval_pending"))  # no status of its own
    post(announcement("environment_verified"))
    link = "https://gitopsd.example.com/api/v1/runs/run-9"
    assert client.posted == [
        Posted("octo-org/infra", SHA, "pending", "gitopsd/staging", "applying to staging", link),
        Posted("octo-org/infra", SHA, "success", "gitopsd/staging", "verified in staging", link),
    ]
    assert counted == ["success", "success"]


def test_destroy_runs_set_no_status() -> None:
    client, counted = RecordingStatuses(), list[str]()
    poster(client, counted)(announcement("run_started", action="destroy"))
    assert client.posted == [] and counted == []


def test_a_refused_status_is_logged_and_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counted: list[str] = []
    with caplog.at_level(logging.WARNING, logger="gitopsd"):
        poster(RecordingStatuses(fail=True), counted)(announcement("run_failed"))
    assert counted == ["failure"]
    assert (
        "could not set gitopsd/staging to failure on 1a2b3c4d5e6f in octo-org/infra: "
        "GitHub answered 422" in caplog.text
    )
