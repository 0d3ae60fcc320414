"""Promotion of one environment from its upstream: what it wants next, and what holds it.

Pipeline: verify -> **promote** -> approve -> windows -> apply. The pure rules live in the
engine (`promotion`, `approving`, `windows`); this module feeds them what the store knows:
- the upstream's holds, read from its apply runs: a successful apply of a revision starts a
  hold when it finishes, and the next apply run of another revision ends it when it starts
  (whatever its outcome: the upstream left the revision it had verified);
- the approvals recorded for the candidate revision;
- the environment's windows at `now`.
The decision is one of: nothing to do, waiting for approvals, waiting for a window, or ready
(with the revision to apply).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gitopsd.engine import approving, promotion, windows
from gitopsd.engine.loading import EnvironmentEntry
from gitopsd.engine.ports import StateStore
from gitopsd.errors import GitopsdError
from gitopsd.model.state import (
    ApprovalRecord,
    EnvironmentState,
    EnvironmentStatus,
    Run,
    RunAction,
    RunStatus,
)
from gitopsd.runtime import audit
from gitopsd.runtime.workspace import RunRefusedError, Workspace

HISTORY = 500  # apply runs of the upstream read to find its holds


class Wait(StrEnum):
    NOTHING = "nothing"
    APPROVAL = "waiting_approval"
    WINDOW = "waiting_window"
    READY = "ready"


@dataclass(frozen=True)
class Decision:
    wait: Wait
    revision: str | None
    reason: str
    look_again_at: datetime | None = None
    approvals: list[ApprovalRecord] = field(default_factory=list)
    required: int = 0
    superseded: str | None = None  # the revision whose pending approval this one replaced
    forced: bool = False  # ready only because --force overrode a window in force


def holds(store: StateStore, environment: str) -> list[promotion.Hold]:
    """The revisions `environment` held verified, oldest first (see the module doc)."""
    runs = [
        run
        for run in store.list_runs(environment, limit=HISTORY)
        if run.action is RunAction.APPLY and run.started_at is not None
    ]
    found: list[promotion.Hold] = []
    for run in sorted(runs, key=lambda r: (r.started_at, r.id)):
        current = found[-1] if found and found[-1].until is None else None
        if current is not None and current.revision != run.revision:
            found[-1] = promotion.Hold(current.revision, current.since, until=run.started_at)
            current = None
        if run.status is RunStatus.SUCCEEDED and run.finished_at and current is None:
            found.append(promotion.Hold(run.revision, run.finished_at))
    return found


def decide(
    store: StateStore,
    entry: EnvironmentEntry,
    *,
    now: datetime,
    revision: str | None = None,
    forced: bool = False,
) -> Decision:
    """What `entry`'s environment should do now; `revision` asks for that one (it must be
    held by the upstream, soak or not), `forced` ignores the windows."""
    spec = entry.manifest.spec
    upstream = entry.manifest.upstream
    if upstream is None:
        return Decision(Wait.NOTHING, None, f"{entry.manifest.name} follows the branch head")
    state = store.get_environment(entry.manifest.name)
    current = state.revision if state else None
    upstream_holds = holds(store, upstream)
    if revision is None:
        found = promotion.candidate(
            upstream_holds, soak=spec.promotion.soak, now=now, current=current
        )
        if found.revision is None:
            return Decision(Wait.NOTHING, None, found.reason, found.look_again_at)
        revision = found.revision
    elif not any(hold.revision == revision for hold in upstream_holds):
        return Decision(Wait.NOTHING, None, f"{upstream} never verified {revision[:12]}")
    given = store.list_approvals(entry.manifest.name, revision)
    missing = approving.missing(spec.approvals, _as_approvals(given))
    if missing:
        reason = f"{revision[:12]} needs {missing} more approval{'s' if missing > 1 else ''}"
        return Decision(Wait.APPROVAL, revision, reason, None, given, spec.approvals.required)
    verdict = windows.verdict(spec.windows, now)
    if verdict.blocked and not forced:
        return Decision(Wait.WINDOW, revision, verdict.reason, verdict.until, given)
    return Decision(Wait.READY, revision, f"{revision[:12]} from {upstream}", None, given)


def _as_approvals(records: list[ApprovalRecord]) -> list[approving.Approval]:
    return [
        approving.Approval(r.environment, r.revision, approving.Person(r.approver, r.email), r.at)
        for r in records
    ]


class ApprovalRefusedError(GitopsdError):
    """An approval not recorded, with the reason; `conflict` when the state is at fault
    (nothing waits for approval, given already) rather than who approves (HTTP 409 / 403)."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


def promote(
    workspace: Workspace,
    environment: str,
    *,
    revision: str | None = None,
    forced: bool = False,
    actor: str = "local",
) -> tuple[Decision, Run | None]:
    """Promote `environment` from its upstream if nothing holds it; the run, when one ran."""
    if _entry(workspace, environment).manifest.upstream is None:
        return Decision(Wait.NOTHING, None, f"{environment} follows the branch head"), None
    pending = pending_approval(workspace.store, environment)
    decision = admit(workspace, environment, revision=revision, forced=forced, actor=actor)
    if pending is not None and decision.revision not in (None, pending):
        decision = dataclasses.replace(decision, superseded=pending)
        audit.record(
            workspace,
            environment,
            "approval.superseded",
            f"{pending[:12]} no longer waits for approval: "
            f"{(decision.revision or '')[:12]} replaces it",
            actor=actor,
            revision=pending,
            by=decision.revision,
        )
    if decision.wait is not Wait.READY:
        return decision, None
    audit.record(
        workspace,
        environment,
        "promotion.started",
        f"{actor} promotes {decision.reason}",
        actor=actor,
        revision=decision.revision,
    )
    run = workspace.apply(
        environment,
        revision=decision.revision,
        trigger="promotion",
        actor=actor,
        forced=decision.forced,
    )
    return decision, run


def admit(
    workspace: Workspace,
    environment: str,
    *,
    revision: str | None,
    forced: bool = False,
    actor: str = "local",
) -> Decision:
    """May `revision` (default: what the environment wants) be applied to `environment` now?

    An environment that follows an upstream takes only what the upstream verified, after
    its approvals (a promotion); one that tracks the branch takes any revision. Either way a
    window in force holds it unless `forced`, and a forced apply is recorded. A waiting
    decision also marks the environment waiting_approval or waiting_window.
    """
    entry = _entry(workspace, environment)
    wanted = workspace.source.resolve(revision) if revision else None
    now = workspace.clock.now()
    if entry.manifest.upstream is not None:
        decision = decide(workspace.store, entry, now=now, revision=wanted, forced=forced)
    else:
        target = wanted or workspace.source.head()
        verdict = windows.verdict(entry.manifest.spec.windows, now)
        if verdict.blocked and not forced:
            decision = Decision(Wait.WINDOW, target, verdict.reason, verdict.until)
        else:
            decision = Decision(Wait.READY, target, f"{target[:12]} from the branch")
    if decision.wait in (Wait.APPROVAL, Wait.WINDOW):
        _mark_waiting(workspace, environment, decision, actor=actor)
    elif decision.wait is Wait.READY and forced and _blocked(entry, now):
        decision = dataclasses.replace(decision, forced=True)
        forced_through = f"{actor} forced {(decision.revision or '')[:12]} through a window"
        audit.record(
            workspace,
            environment,
            "promotion.forced",
            forced_through,
            actor=actor,
            revision=decision.revision,
        )
    return decision


def roll_back(workspace: Workspace, environment: str, *, to: str, actor: str = "local") -> Run:
    """Re-apply `to`, which the environment must have verified before (SPEC 3.3): the one
    way a revision enters an environment without its upstream. Windows do not hold it: a
    rollback restores a state the environment already ran."""
    _entry(workspace, environment)
    revision = workspace.source.resolve(to)
    if not any(hold.revision == revision for hold in holds(workspace.store, environment)):
        raise RunRefusedError(
            f"{environment} never verified {revision[:12]}: rollback only returns to a "
            "revision the environment verified before"
        )
    audit.record(
        workspace,
        environment,
        "rollback.requested",
        f"{actor} rolls {environment} back to {revision[:12]}",
        actor=actor,
        revision=revision,
    )
    return workspace.apply(environment, revision=revision, trigger="rollback", actor=actor)


def approve(
    workspace: Workspace, environment: str, *, revision: str | None, approver: approving.Person
) -> tuple[ApprovalRecord, int]:
    """Record `approver`'s approval of the pending (or given) revision; how many are still
    missing. ApprovalRefusedError says why not."""
    entry = _entry(workspace, environment)
    now = workspace.clock.now()
    if revision is None:
        pending = decide(workspace.store, entry, now=now)
        if pending.wait in (Wait.READY, Wait.WINDOW) and pending.revision is not None:
            raise ApprovalRefusedError(
                f"{environment} has every approval it needs for {pending.revision[:12]}",
                conflict=True,
            )
        if pending.wait is not Wait.APPROVAL or pending.revision is None:
            raise ApprovalRefusedError(
                f"no promotion of {environment} is waiting for approval ({pending.reason})",
                conflict=True,
            )
        revision = pending.revision
    else:
        revision = workspace.source.resolve(revision)
        upstream = entry.manifest.upstream
        if upstream is None or not any(
            h.revision == revision for h in holds(workspace.store, upstream)
        ):
            raise ApprovalRefusedError(
                f"{revision[:12]} is not a candidate for {environment}: its upstream never "
                "verified it",
                conflict=True,
            )
    policy = entry.manifest.spec.approvals
    given = workspace.store.list_approvals(environment, revision)
    author = approving.Person(*workspace.source.author(revision))
    refused = approving.refusal(
        policy, approver=approver, author=author, given=_as_approvals(given)
    )
    if refused is not None:
        audit.record(
            workspace,
            environment,
            "approval.refused",
            f"{approver.name}: {refused.reason}",
            actor=approver.name,
            revision=revision,
        )
        raise ApprovalRefusedError(refused.reason, conflict=refused.conflict)
    record = ApprovalRecord(
        environment=environment,
        revision=revision,
        approver=approver.name,
        email=approver.email,
        at=now,
    )
    if not workspace.store.add_approval(record):
        raise ApprovalRefusedError(
            f"{approver.name} has approved this revision already", conflict=True
        )
    missing = approving.missing(policy, _as_approvals([*given, record]))
    audit.record(
        workspace,
        environment,
        "approval.recorded",
        f"{approver.name} approved {revision[:12]} ({missing} more needed)",
        actor=approver.name,
        revision=revision,
        missing=missing,
    )
    return record, missing


def pending_approval(store: StateStore, environment: str) -> str | None:
    """The revision `environment` waits for approvals of, while it waits for approvals."""
    state = store.get_environment(environment)
    if state is None or state.status is not EnvironmentStatus.WAITING_APPROVAL:
        return None
    last = _last_wait(store, environment)
    return last[1] if last and last[0] == Wait.APPROVAL.value else None


def _last_wait(store: StateStore, environment: str) -> tuple[str, str | None] | None:
    """(wait, revision) of the environment's latest `promotion.waiting_*` event."""
    for event in store.list_events(environment, limit=200):
        if event.kind.startswith("promotion.waiting_"):
            revision = event.data.get("revision")
            wait = event.kind.removeprefix("promotion.")
            return wait, revision if isinstance(revision, str) else None
    return None


def _blocked(entry: EnvironmentEntry, now: datetime) -> bool:
    return windows.verdict(entry.manifest.spec.windows, now).blocked


def _entry(workspace: Workspace, environment: str) -> EnvironmentEntry:
    repository = workspace.load().repository
    entry = repository.environments.get(environment)
    if entry is None:
        known = ", ".join(sorted(repository.environments)) or "none"
        raise RunRefusedError(f"unknown environment {environment!r} (environments: {known})")
    return entry


def _mark_waiting(
    workspace: Workspace, environment: str, decision: Decision, *, actor: str
) -> None:
    """Mark the environment waiting, with an event, unless it already waits for the same."""
    status = EnvironmentStatus(decision.wait.value)
    now = workspace.clock.now()
    state = workspace.store.get_environment(environment) or EnvironmentState(
        name=environment, updated_at=now
    )
    if state.status is status and _last_wait(workspace.store, environment) == (
        status.value,
        decision.revision,
    ):
        return  # asked again (a timer, the daemon's periodic look): nothing new to record
    with workspace.store.transaction():
        workspace.store.save_environment(
            state.model_copy(update={"status": status, "updated_at": now})
        )
        audit.record(
            workspace,
            environment,
            f"promotion.{decision.wait.value}",
            decision.reason,
            actor=actor,
            revision=decision.revision,
        )
