"""Which audit events are announced, as what, and the commit status each implies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitopsd.engine import announcements
from gitopsd.engine.announcements import Announcement
from gitopsd.model.manifests import DEFAULT_NOTIFICATION_EVENTS, NotificationEvent
from gitopsd.model.state import Event, Run, RunAction, RunStatus

AT = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


def event(kind: str, *, run_id: str | None = None, **data: Any) -> Event:
    return Event(
        id=41, at=AT, environment="dev", run_id=run_id, actor="alice", kind=kind,
        message=f"{kind} happened", data=data,
    )  # fmt: skip


def run(action: RunAction = RunAction.APPLY, **changes: Any) -> Run:
    made = Run(id="run-7", environment="dev", revision=SHA, action=action, created_at=AT)
    return made.model_copy(update=changes)


def kind_of(found: Announcement | None) -> str | None:
    return found.kind if found else None


@pytest.mark.parametrize(
    ("kind", "data", "action", "expected"),
    [
        ("run.started", {}, RunAction.APPLY, "run_started"),
        ("run.started", {}, RunAction.DESTROY, "run_started"),
        ("run.finished", {"status": "succeeded"}, RunAction.APPLY, "environment_verified"),
        ("run.finished", {"status": "succeeded"}, RunAction.DESTROY, None),
        ("run.finished", {"status": "failed"}, RunAction.APPLY, "run_failed"),
        ("run.finished", {"status": "failed"}, RunAction.DESTROY, "run_failed"),
        ("run.finished", {"status": "cancelled"}, RunAction.APPLY, "run_cancelled"),
        ("run.resumed", {}, RunAction.APPLY, None),
        ("run.started", {}, RunAction.PLAN, None),  # a plan changes nothing: no announcement
        ("run.finished", {"status": "failed"}, RunAction.PLAN, None),
        ("component.applied", {}, RunAction.APPLY, None),
        ("rollback.started", {}, RunAction.APPLY, None),
    ],
)
def test_run_events_are_announced_by_outcome(
    kind: str, data: dict[str, Any], action: RunAction, expected: str | None
) -> None:
    assert kind_of(announcements.announce(event(kind, run_id="run-7", **data), run(action))) == (
        expected
    )


def test_a_failed_run_carries_its_revision_action_and_error() -> None:
    failed = run(status=RunStatus.FAILED, error="failed: dns; rolled back to 0f0f0f0f0f0f")
    found = announcements.announce(event("run.finished", run_id="run-7", status="failed"), failed)
    assert found == Announcement(
        kind="run_failed", event_id=41, at=AT, environment="dev",
        message="run.finished happened", actor="alice", revision=SHA, run_id="run-7",
        action="apply", error="failed: dns; rolled back to 0f0f0f0f0f0f",
    )  # fmt: skip
    assert found.headline() == "dev: apply of 1a2b3c4d5e6f failed: dns; rolled back to 0f0f0f0f0f0f"


def test_approval_and_drift_events_take_the_revision_from_their_data() -> None:
    waiting = announcements.announce(event("promotion.waiting_approval", revision=SHA))
    assert waiting is not None
    assert (waiting.kind, waiting.revision, waiting.run_id) == ("approval_pending", SHA, None)
    assert waiting.headline() == "dev waits for approvals of 1a2b3c4d5e6f"
    drifted = announcements.announce(
        event("drift.checked", result="drifted", drifted=["k8s", "dns"], revision=SHA)
    )
    assert drifted is not None
    assert (drifted.kind, drifted.components, drifted.revision) == (
        "drift_detected",
        ("k8s", "dns"),
        SHA,
    )
    assert drifted.headline() == "dev drifted: k8s, dns"


@pytest.mark.parametrize(
    "quiet",
    [
        event("drift.checked", result="in_sync", drifted=[]),
        event("drift.checked", result="error", drifted=[]),
        event("promotion.waiting_window", revision=SHA),
        event("approval.recorded", revision=SHA),
        event("run.started").model_copy(update={"environment": None}),
        event("run.started").model_copy(update={"id": None}),
    ],
    ids=["in-sync", "check-error", "window", "approval", "no-environment", "not-stored"],
)
def test_bookkeeping_and_good_news_about_drift_are_not_announced(quiet: Event) -> None:
    assert announcements.announce(quiet) is None


def test_every_announced_kind_can_be_asked_for_and_the_defaults_are_the_issue_four() -> None:
    assert set(DEFAULT_NOTIFICATION_EVENTS) == {
        "run_failed", "environment_verified", "approval_pending", "drift_detected",
    }  # fmt: skip
    made = {
        "run_started": announcements.announce(event("run.started", run_id="r"), run()),
        "run_cancelled": announcements.announce(
            event("run.finished", run_id="r", status="cancelled"), run()
        ),
    }
    assert {kind for kind, found in made.items() if found and found.kind == kind} == set(made)


def status_of(kind: NotificationEvent, action: str | None = "apply", **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "kind": kind, "event_id": 1, "at": AT, "environment": "prod", "message": "m",
        "actor": "a", "revision": SHA, "run_id": "run-7", "action": action,
    }  # fmt: skip
    return announcements.commit_status(Announcement(**{**fields, **changes}))


@pytest.mark.parametrize(
    ("kind", "state", "description"),
    [
        ("run_started", "pending", "applying to prod"),
        ("environment_verified", "success", "verified in prod"),
        ("run_failed", "failure", "failed in prod"),
        ("run_cancelled", "error", "cancelled in prod"),
    ],
)
def test_an_apply_run_sets_its_revisions_status_in_the_environment(
    kind: NotificationEvent, state: str, description: str
) -> None:
    status = status_of(kind)
    assert (status.revision, status.context, status.state, status.description) == (
        SHA,
        "gitopsd/prod",
        state,
        description,
    )


def test_no_status_for_destroy_runs_approvals_drift_or_an_unknown_revision() -> None:
    assert status_of("run_started", action="destroy") is None
    assert status_of("run_failed", action="destroy") is None
    assert status_of("approval_pending", action=None) is None
    assert status_of("drift_detected", action=None) is None
    assert status_of("run_started", revision=None) is None


def test_a_long_failure_is_cut_to_what_github_shows_on_one_line() -> None:
    status = status_of("run_failed", error="failed: " + "x" * 300 + "\nsecond line")
    assert len(status.description) == announcements.DESCRIPTION_LIMIT
    assert status.description.startswith("failed in prod: xxx")
    assert status.description.endswith("…") and "\n" not in status.description
