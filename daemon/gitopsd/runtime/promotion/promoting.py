"""Promotion of one environment from its upstream, rollback, and approvals.

Pipeline: verify -> **promote** -> approve -> windows -> apply. Whether a revision may enter
is the one admission rule's to say (runtime.promotion.admission, engine.admitting); this module is
what is promotion-specific around it: running the promotion or rollback it admits, and recording
approvals of the revision an environment waits for (its pending approval is a record on the
environment, not a replay of its history).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from gitopsd.engine import approving
from gitopsd.engine.admitting import Admission, Wait
from gitopsd.errors import (
    ApprovalConflictError,
    ApproverRefusedError,
    RunRefusedError,
)
from gitopsd.model.manifests import Approvals
from gitopsd.model.state import ApprovalRecord, PendingApproval, RequestKind, Run, Suspension
from gitopsd.runtime.promotion import admission, suspending
from gitopsd.runtime.records import audit, promotion_records
from gitopsd.runtime.runs.workspace import Workspace, new_run_id

__all__ = ["Admission", "Completion", "Wait", "approve", "promote", "roll_back"]


def promote(
    workspace: Workspace,
    environment: str,
    *,
    revision: str | None = None,
    forced: bool = False,
    actor: str = "local",
    automatic: bool = False,
    run_id: str | None = None,
) -> tuple[Admission, Run | None]:
    """Promote `environment` from its upstream if admission lets it; the run, when one ran
    (with `run_id`: the request's, so a restart knows the request has its run)."""
    decision = admission.admit(
        workspace,
        environment,
        action=RequestKind.PROMOTE,
        revision=revision,
        forced=forced,
        actor=actor,
        automatic=automatic,
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
        run_id=run_id,
    )
    return decision, run


def roll_back(
    workspace: Workspace,
    environment: str,
    *,
    to: str,
    actor: str = "local",
    run_id: str | None = None,
) -> tuple[Run, Suspension | None]:
    """Re-apply `to`, which the environment must have verified before (SPEC 3.3): the one
    way a revision enters an environment without its upstream. Windows and approvals do
    not hold it: a rollback restores a state the environment already ran. The run, and the
    suspension of the environment's automatic work the rollback made (`_hold_automatic_work`),
    if it made one."""
    decision = admission.admit(
        workspace, environment, action=RequestKind.ROLLBACK, revision=to, actor=actor
    )
    if decision.wait is not Wait.READY or decision.revision is None:
        raise RunRefusedError(decision.reason)
    revision = decision.revision
    run_id = run_id or new_run_id(workspace.clock)
    suspended: list[Suspension] = []

    def under_the_lease() -> None:
        """Suspend and record once the rollback holds the environment: one refused (busy,
        another process runs it) leaves no suspension behind for a rollback that never ran."""
        made = _hold_automatic_work(workspace, environment, revision, actor, run_id)
        if made is not None:
            suspended.append(made)
        audit.record(
            workspace,
            environment,
            "rollback.requested",
            f"{actor} rolls {environment} back to {revision[:12]}",
            actor=actor,
            revision=revision,
        )

    run = workspace.apply(
        environment,
        revision=revision,
        trigger="rollback",
        actor=actor,
        run_id=run_id,
        check=under_the_lease,
    )
    return run, next(iter(suspended), None)


def _hold_automatic_work(
    workspace: Workspace, environment: str, revision: str, actor: str, run_id: str
) -> Suspension | None:
    """Suspend the environment's automatic work, if it has any, before it rolls back: its
    next commit (an environment that follows the branch) or automatic promotion (`auto`)
    would take it straight back to what it is rolled back from. Argo CD refuses a rollback
    while automated sync is on and Flux asks to suspend first; here the rollback does both
    in one step, on the record, and a person resumes (`gitopsd resume`) once a fix is ready.
    A suspension already in force is restated with the rollback's reason (whoever lifts it
    must know it lets the rollback be undone). None when there is nothing automatic to hold
    or it runs `revision` already (a re-apply takes it back from nothing)."""
    manifest = admission.entry(workspace, environment).manifest
    if manifest.upstream is not None and not manifest.spec.promotion.auto:
        return None
    state = workspace.store.get_environment(environment)
    if state is not None and state.revision == revision:
        return None
    source = "its next commit" if manifest.upstream is None else "its automatic promotion"
    left = f" from {state.revision[:12]}" if state and state.revision else ""
    reason = (
        f"rolled back{left} to {revision[:12]}: {source} would undo the rollback;"
        f" resume once a fix is ready"
    )
    return suspending.hold_for_rollback(
        workspace, environment, reason=reason, actor=actor, run_id=run_id
    )


def approve(
    workspace: Workspace,
    environment: str,
    *,
    revision: str | None,
    approver: approving.Person,
    token: str | None = None,
) -> tuple[ApprovalRecord, int]:
    """Record `approver`'s approval of the pending (or given) revision; how many are still
    missing. `token` names the API token the approver authenticated with (None: a name
    declared on the command line). An ApprovalRefusedError (gitopsd.errors) says why not."""
    entry = admission.entry(workspace, environment)
    revision = _approvable(workspace, environment, revision)
    policy = entry.manifest.spec.approvals
    given = workspace.store.list_approvals(environment, revision)
    author = approving.Person(*workspace.source.author(revision))
    refused = approving.refusal(
        policy,
        approver=approver,
        author=author,
        given=approving.from_records(given),
        authenticated=token is not None,
    )
    if refused is not None:
        _refuse(workspace, environment, revision, approver, refused)
    record = ApprovalRecord(
        environment=environment,
        revision=revision,
        approver=approver.name,
        email=approver.email,
        at=workspace.clock.now(),
        authenticated=token is not None,
        token=token,
    )
    if not workspace.store.add_approval(record):
        _give_again(workspace, record, policy, author)
    missing = approving.missing(policy, approving.from_records([*given, record]), author)
    _recorded(workspace, record, missing)
    return record, missing


def _give_again(
    workspace: Workspace, record: ApprovalRecord, policy: Approvals, author: approving.Person
) -> None:
    """`record` in place of its approver's earlier approval of the revision, which the rules
    no longer count (given by name before the environment required tokens); one that still
    counts is a conflict (the same person approving twice at the same moment)."""
    earlier = [
        a
        for a in workspace.store.list_approvals(record.environment, record.revision)
        if a.approver == record.approver
    ]
    if approving.counted(policy, approving.from_records(earlier), author):
        raise ApprovalConflictError(f"{record.approver} has approved this revision already")
    workspace.store.replace_approval(record)


def _recorded(workspace: Workspace, record: ApprovalRecord, missing: int) -> None:
    """The history says who approved and how they proved it: with a token (named), or
    by a name they declared themselves."""
    how = f"with token {record.token}" if record.token else "self-declared"
    audit.record(
        workspace,
        record.environment,
        "approval.recorded",
        f"{record.approver} approved {record.revision[:12]} ({how}; {missing} more needed)",
        actor=record.approver,
        revision=record.revision,
        missing=missing,
        authenticated=record.authenticated,
        token=record.token,
    )


def _refuse(
    workspace: Workspace,
    environment: str,
    revision: str,
    approver: approving.Person,
    refused: approving.Refusal,
) -> NoReturn:
    """Record the refusal in the history (who tried, why not), then raise it."""
    audit.record(
        workspace,
        environment,
        "approval.refused",
        f"{approver.name}: {refused.reason}",
        actor=approver.name,
        revision=revision,
    )
    kind = ApprovalConflictError if refused.conflict else ApproverRefusedError
    raise kind(refused.reason)


@dataclass(frozen=True)
class Completion:
    """The promotion an approval that completes `revision`'s approvals starts: the one a
    person asked for (`asked_by`), of exactly `revision`, as their request; or, with
    `asked_by` None, the environment's own automatic promotion (of its newest candidate)."""

    revision: str
    asked_by: str | None


def completed_promotion(workspace: Workspace, record: ApprovalRecord) -> Completion | None:
    """What `record`, the approval that makes its revision's approvals complete, starts:
    the promotion recorded as waiting for them (the pending approval,
    PendingApproval.counts), or in an `auto` environment its own. None when they are not
    complete, or were before it (an approval given after the promotion was asked for
    again would run the revision a second time, or take the environment back to it). The
    daemon takes approvals one at a time (`OperatorRequests.approve`), and its worker
    drops a promotion an approval started once a newer one ran (`runtime.service.handling`).
    Approvals alone never start a promotion otherwise: approving and operating are separate
    roles."""
    environment, revision = record.environment, record.revision
    entry = admission.entry(workspace, environment)
    policy = entry.manifest.spec.approvals
    given = workspace.store.list_approvals(environment, revision)
    others = [a for a in given if a.approver != record.approver]
    author = approving.Person(*workspace.source.author(revision))
    if approving.missing(policy, approving.from_records(given), author) or not approving.missing(
        policy, approving.from_records(others), author
    ):
        return None
    pending = promotion_records.pending(workspace.store.get_environment(environment), entry)
    if pending is not None and pending.revision == revision:
        return Completion(revision, pending.asked_by)
    return Completion(revision, None) if entry.manifest.spec.promotion.auto else None


def _approvable(workspace: Workspace, environment: str, revision: str | None) -> str:
    """The revision an approval is for: the given one, if the upstream verified it (given
    before a promotion of it waits, it counts when one does), or the one a promotion of the
    environment waits for approvals of, as recorded."""
    if revision is not None:
        revision = workspace.source.resolve(revision)
        upstream = admission.entry(workspace, environment).manifest.upstream
        if upstream is None or not any(
            h.revision == revision for h in promotion_records.holds(workspace.store, upstream)
        ):
            raise ApprovalConflictError(
                f"{revision[:12]} is not a candidate for {environment}: its upstream never "
                "verified it"
            )
        return revision
    pending = pending_approval(workspace, environment)
    waiting = pending.revision if pending else None
    now = admission.admit(workspace, environment, action=RequestKind.PROMOTE, record=False)
    complete = now.wait in (Wait.READY, Wait.WINDOW) and now.revision is not None
    if complete and waiting in (None, now.revision):
        raise ApprovalConflictError(
            f"{environment} has every approval it needs for {(now.revision or '')[:12]}"
        )
    if waiting is not None:
        return waiting
    if now.wait is Wait.APPROVAL and now.revision is not None:
        raise ApprovalConflictError(
            f"no promotion of {environment} is waiting for approval: nobody has asked to "
            f"promote {now.revision[:12]} yet (gitopsd promote --to {environment})"
        )
    raise ApprovalConflictError(
        f"no promotion of {environment} is waiting for approval ({now.reason})"
    )


def pending_approval(workspace: Workspace, environment: str) -> PendingApproval | None:
    """The approval a promotion of `environment` waits for, if it still counts
    (promotion_records.pending: one the environment's own promotion recorded, only while
    it is `auto`)."""
    state = workspace.store.get_environment(environment)
    return promotion_records.pending(state, admission.entry(workspace, environment))
