"""What the audit trail means to people outside: announcements, and the commit status of each.

Pipeline: run -> audit trail -> outbox -> **announce** -> commit statuses, notifications.
The outbox reads every event the daemon appends; most are bookkeeping (a step retried, a
gate passed). `announce` picks out the few someone outside wants to hear about and says them
in one shape; `commit_status` says what a GitHub commit status of the run's revision becomes.
Both are pure, so every rule here is tested without a daemon, a network or a store.

Which event becomes which announcement:
- `run.started` -> run_started (apply and destroy runs; a plan's events are not announced:
  it changes nothing, and its revision's commit status is the apply's to set);
- `run.finished` -> environment_verified (an apply succeeded), run_failed, run_cancelled;
  a destroy that succeeded announces nothing: it verifies nothing;
- `promotion.waiting_approval` -> approval_pending;
- `drift.checked` that found drifted components -> drift_detected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gitopsd.model.manifests import NotificationEvent
from gitopsd.model.state import Event, Run, RunAction

# GitHub shows about this much of a status description; longer ones are refused.
DESCRIPTION_LIMIT = 140
StatusState = Literal["pending", "success", "failure", "error"]


@dataclass(frozen=True)
class Announcement:
    """One thing that happened, for whom it may concern. `event_id` is the audit event's id:
    the same announcement delivered twice (the outbox delivers at least once) has the same."""

    kind: NotificationEvent
    event_id: int
    at: datetime
    environment: str
    message: str  # the audit event's own message
    actor: str
    revision: str | None = None
    run_id: str | None = None
    action: str | None = None  # apply or destroy, for the run_* kinds and environment_verified
    error: str | None = None  # why a run failed
    components: tuple[str, ...] = ()  # the drifted ones, for drift_detected

    @property
    def short_revision(self) -> str:
        return self.revision[:12] if self.revision else "(unknown revision)"

    def headline(self) -> str:
        """One line that says it all, for a chat message or a status description."""
        where, revision = self.environment, self.short_revision
        action = self.action or "run"
        match self.kind:
            case "run_started":
                return f"{where}: {action} of {revision} started"
            case "run_failed":
                return f"{where}: {action} of {revision} failed" + self.failure_detail()
            case "run_cancelled":
                return f"{where}: {action} of {revision} was cancelled"
            case "environment_verified":
                return f"{where} is verified at {revision}"
            case "approval_pending":
                return f"{where} waits for approvals of {revision}"
            case "drift_detected":
                return f"{where} drifted: {', '.join(self.components)}"

    def failure_detail(self) -> str:
        """`: dns; rolled back to ...` from the run's error `failed: dns; rolled back to ...`."""
        return f": {self.error.removeprefix('failed: ')}" if self.error else ""


def announce(event: Event, run: Run | None = None) -> Announcement | None:
    """The announcement `event` makes, if any. `run` is the event's run, when it has one (the
    run's revision and action are on the run, not repeated on each of its events)."""
    if event.environment is None or event.id is None:
        return None
    kind = _kind(event, run)
    if kind is None:
        return None
    revision = run.revision if run is not None else _text(event, "revision")
    return Announcement(
        kind=kind,
        event_id=event.id,
        at=event.at,
        environment=event.environment,
        message=event.message,
        actor=event.actor,
        revision=revision,
        run_id=event.run_id,
        action=run.action.value if run is not None else None,
        error=run.error if run is not None and kind == "run_failed" else None,
        components=tuple(_drifted(event)) if kind == "drift_detected" else (),
    )


def _kind(event: Event, run: Run | None) -> NotificationEvent | None:
    if run is not None and run.action is RunAction.PLAN:
        return None
    if event.kind == "run.started":
        return "run_started"
    if event.kind == "run.finished":
        status = event.data.get("status")
        if status == "succeeded":
            applied = run is not None and run.action is RunAction.APPLY
            return "environment_verified" if applied else None
        return _FINISHED.get(str(status))
    if event.kind == "promotion.waiting_approval":
        return "approval_pending"
    if event.kind == "drift.checked" and _drifted(event):
        return "drift_detected"
    return None


_FINISHED: dict[str, NotificationEvent] = {"failed": "run_failed", "cancelled": "run_cancelled"}


def _drifted(event: Event) -> list[str]:
    found = event.data.get("drifted")
    return [str(name) for name in found] if isinstance(found, list) else []


def _text(event: Event, key: str) -> str | None:
    value = event.data.get(key)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class CommitStatus:
    """A GitHub commit status `gitopsd/<environment>` of one revision."""

    revision: str
    context: str
    state: StatusState
    description: str


def commit_status(announcement: Announcement) -> CommitStatus | None:
    """What an apply run's announcement makes of its revision's status, if anything.

    pending when it starts, success when verified, failure when it failed (a run that rolled
    back failed too: the revision is not what the environment runs), and error when it was
    cancelled: nothing was decided about the revision, but it is not pending any more.
    Destroy runs, approvals and drift say nothing about a revision: no status.
    """
    state = _STATES.get(announcement.kind)
    if state is None or announcement.action != "apply" or announcement.revision is None:
        return None
    environment = announcement.environment
    descriptions = {
        "pending": f"applying to {environment}",
        "success": f"verified in {environment}",
        "failure": f"failed in {environment}{announcement.failure_detail()}",
        "error": f"cancelled in {environment}",
    }
    return CommitStatus(
        revision=announcement.revision,
        context=f"gitopsd/{environment}",
        state=state,
        description=shorten(descriptions[state], DESCRIPTION_LIMIT),
    )


_STATES: dict[str, StatusState] = {
    "run_started": "pending",
    "environment_verified": "success",
    "run_failed": "failure",
    "run_cancelled": "error",
}


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis when longer."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
