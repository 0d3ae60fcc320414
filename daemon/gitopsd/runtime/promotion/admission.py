"""The front door: every way work arrives asks `admit` before anything acts on it.

Pipeline: request -> **admit** -> queue/run. This module gathers what the pure rule
(engine.admitting) needs, from the store (holds, approvals, suspension), git (the head,
whether a revision is on the branch) and the manifests (upstream, soak, approvals, windows),
and records what the decision means for the environment:
- a wait is stored on the environment's record (`waiting`: kind, revision, reason, until)
  with one `promotion.waiting_*` (or `request.held`) event per wait and revision; a wait for
  approvals also stores the pending approval (revision, required), and a newer revision
  supersedes an older pending one (`approval.superseded`);
- a window overridden by `forced` is recorded with who forced it (`promotion.forced`);
- a candidate revision (the head, the upstream's: what the environment itself would take)
  blocked for its commit's signature (engine.signing) is stored the same way, with status
  `blocked` and one `revision.untrusted` event per revision (the reason, and the key and
  signer git found), and said to the caller with `first_blocked` so the daemon counts it
  once; one asked for by name (`--revision`, a rollback target) is refused with a
  `revision.untrusted` event per request, and leaves the status alone.
`record=False` decides without writing: the API answers a request with it (409 or 202) and
the environment's worker, the one writer of its record, admits it again when it takes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from gitopsd.engine import admitting, approving, governing, signing
from gitopsd.engine.admitting import Admission, Wait
from gitopsd.engine.loading import EnvironmentEntry
from gitopsd.errors import RunRefusedError
from gitopsd.model.state import (
    CurrentWait,
    EnvironmentState,
    PendingApproval,
    RequestKind,
    RunAction,
    RunStatus,
)
from gitopsd.runtime.records import audit, promotion_records
from gitopsd.runtime.records.pages import each_run
from gitopsd.runtime.runs.workspace import Workspace

__all__ = ["Admission", "Wait", "admit", "entry"]

_CANDIDATE = (Wait.APPROVAL, Wait.WINDOW, Wait.READY)  # the revision moves on: supersedes
_ENDED_BADLY = (RunStatus.FAILED, RunStatus.CANCELLED)


def admit(
    workspace: Workspace,
    environment: str,
    *,
    action: RequestKind = RequestKind.APPLY,
    revision: str | None = None,
    forced: bool = False,
    actor: str = "local",
    automatic: bool = False,
    record: bool = True,
) -> Admission:
    """May `action` of `revision` (default: what the environment wants) run in
    `environment` now? See engine.admitting for the rules."""
    head = workspace.source.head()  # once: the manifests, the default and the branch check
    state = workspace.store.get_environment(environment)  # once: the rules and facts agree
    found = _governed(workspace, environment, head, state)
    wanted = workspace.source.resolve(revision) if revision else None
    ask = admitting.Ask(environment, action, wanted, forced=forced, automatic=automatic)
    facts = _facts(workspace, found, state, head, workspace.clock.now())
    decision = admitting.decide(ask, facts)
    if record:
        candidate = automatic or revision is None  # what the environment itself would take
        decision = _record(
            workspace,
            environment,
            action,
            decision,
            actor=actor,
            candidate=candidate,
            automatic=automatic,
        )
    return decision


def entry(workspace: Workspace, environment: str, *, head: str | None = None) -> EnvironmentEntry:
    """The environment's manifest at the branch head, held to the rules of the revision it
    is at (engine.governing: a commit cannot loosen them for itself, only tighten them);
    RunRefusedError for an environment the head does not have."""
    state = workspace.store.get_environment(environment)
    return _governed(workspace, environment, head, state)


def _governed(
    workspace: Workspace, environment: str, head: str | None, state: EnvironmentState | None
) -> EnvironmentEntry:
    repository = workspace.manifests(head)
    found = repository.environments.get(environment)
    if found is None:
        known = ", ".join(sorted(repository.environments)) or "none"
        raise RunRefusedError(f"unknown environment {environment!r} (environments: {known})")
    return governing.governed_at(
        found, state.revision if state else None, workspace.valid_manifests
    )


def _facts(
    workspace: Workspace,
    found: EnvironmentEntry,
    state: EnvironmentState | None,
    head: str,
    now: datetime,
) -> admitting.Facts:
    store, name = workspace.store, found.manifest.name
    spec, upstream = found.manifest.spec, found.manifest.upstream
    suspension = state.suspension if state else None
    return admitting.Facts(
        now=now,
        head=head,
        upstream=upstream,
        upstream_holds=promotion_records.holds(store, upstream) if upstream else [],
        own_holds=promotion_records.holds(store, name),
        current=state.revision if state else None,
        soak=spec.promotion.soak,
        approvals=spec.approvals,
        windows=spec.windows,
        given=lambda revision: approving.from_records(store.list_approvals(name, revision)),
        on_branch=lambda sha: sha == head or workspace.source.is_on_branch(sha),
        suspended=(suspension.reason or f"by {suspension.actor}") if suspension else None,
        verify=_verifier(workspace, name),
        author=_author(workspace) if spec.approvals.forbid_author else lambda _revision: None,
        last_failed=_last_failed(workspace, name),
    )


def _last_failed(workspace: Workspace, environment: str) -> admitting.FailedApply | None:
    """The environment's last apply that brought a revision in (`Run.brings_a_revision`: an
    apply of some components, or a drift remediation, since does not change what was tried),
    if it ended failed or cancelled."""
    runs = each_run(workspace.store, environment, action=RunAction.APPLY, page_size=8)
    last = next((run for run in runs if run.brings_a_revision), None)
    if last is None or last.status not in _ENDED_BADLY:
        return None
    return admitting.FailedApply(last.revision, last.id, last.status.value)


def _author(workspace: Workspace) -> Callable[[str], approving.Person | None]:
    """A revision's commit author, whose own approval `forbid_author` does not count."""
    return lambda revision: approving.Person(*workspace.source.author(revision))


def _verifier(workspace: Workspace, environment: str) -> signing.Verify:
    """The signature check of `environment`'s revisions, if the trust file requires one."""
    signatures = workspace.signatures
    if signatures is None or not signatures.requires(environment):
        return lambda _revision: None
    return signatures.verify


def _record(
    workspace: Workspace,
    environment: str,
    action: RequestKind,
    decision: Admission,
    *,
    actor: str,
    candidate: bool,
    automatic: bool,
) -> Admission:
    if decision.wait is Wait.BLOCKED and not candidate:  # asked for by name: refused, noted
        _note_untrusted(workspace, environment, decision, actor=actor)
        return decision
    if (
        action in (RequestKind.APPLY, RequestKind.PROMOTE)
        and decision.wait in _CANDIDATE
        and decision.revision
    ):
        decision = _supersede(workspace, environment, decision, actor=actor)
    if decision.wait.is_waiting or decision.wait is Wait.BLOCKED:
        asked_by = None if automatic else actor
        first = _mark_waiting(workspace, environment, decision, actor=actor, asked_by=asked_by)
        decision = dataclasses.replace(decision, first_blocked=first and _is_blocked(decision))
    elif decision.wait is Wait.READY and decision.forced:
        audit.record(
            workspace,
            environment,
            "promotion.forced",
            f"{actor} forced {_forced_what(decision)} through a window",
            actor=actor,
            revision=decision.revision,
        )
    return decision


def _forced_what(decision: Admission) -> str:
    """What a force took through a window: a revision, or a destroy (of no revision)."""
    return decision.revision[:12] if decision.revision else decision.reason


def _supersede(
    workspace: Workspace, environment: str, decision: Admission, *, actor: str
) -> Admission:
    """A newer revision replaces the one waiting for approvals: say so, once."""
    state = workspace.store.get_environment(environment)
    pending = state.pending_approval if state else None
    if state is None or pending is None or pending.revision == decision.revision:
        return decision
    with workspace.store.transaction():
        workspace.store.save_environment(state.model_copy(update={"pending_approval": None}))
        audit.record(
            workspace,
            environment,
            "approval.superseded",
            f"{pending.revision[:12]} no longer waits for approval: "
            f"{(decision.revision or '')[:12]} replaces it",
            actor=actor,
            revision=pending.revision,
            by=decision.revision,
        )
    return dataclasses.replace(decision, superseded=pending.revision)


def _note_untrusted(
    workspace: Workspace, environment: str, decision: Admission, *, actor: str
) -> None:
    """An untrusted revision someone asked for by name (`--revision`, a rollback target):
    each request is recorded, the environment's status is not its to change."""
    audit.record(
        workspace,
        environment,
        "revision.untrusted",
        decision.reason,
        actor=actor,
        revision=decision.revision,
        **_signature_data(decision),
    )


def _is_blocked(decision: Admission) -> bool:
    return decision.wait is Wait.BLOCKED


def _mark_waiting(
    workspace: Workspace,
    environment: str,
    decision: Admission,
    *,
    actor: str,
    asked_by: str | None,
) -> bool:
    """Store the wait on the environment's record, with an event, unless it already waits
    for the same (a timer, the daemon's periodic look: nothing new to record); whether it
    recorded. A wait for approvals records who asked (`asked_by`, None: the environment's
    own automatic promotion); a person asking for what the automatic promotion already
    waits for makes it theirs, without a second event."""
    now = workspace.clock.now()
    state = workspace.store.get_environment(environment) or EnvironmentState(
        name=environment, updated_at=now
    )
    waiting = state.waiting
    if waiting is not None and (waiting.kind, waiting.revision) == (
        decision.wait.value,
        decision.revision,
    ):
        _claim_pending(workspace, state, decision, asked_by=asked_by)
        return False
    changes: dict[str, object] = {
        "status": decision.wait.shown_status or state.status,
        "waiting": CurrentWait(
            kind=decision.wait.value,
            revision=decision.revision,
            reason=decision.reason,
            until=_wait_ends(decision),
            since=now,
        ),
        "updated_at": now,
    }
    pending = state.pending_approval
    if decision.wait is Wait.APPROVAL and decision.revision is not None:
        changes["pending_approval"] = _pending(
            state, decision.revision, decision.required, asked_by, now
        )
    elif pending is not None and pending.revision == decision.revision:
        changes["pending_approval"] = None  # approved: something else holds it now
    with workspace.store.transaction():
        workspace.store.save_environment(state.model_copy(update=changes))
        audit.record(
            workspace,
            environment,
            _event_kind(decision.wait),
            decision.reason,
            actor=actor,
            revision=decision.revision,
            **_signature_data(decision),
        )
    return True


def _pending(
    state: EnvironmentState, revision: str, required: int, asked_by: str | None, now: datetime
) -> PendingApproval:
    """The pending approval of `revision`: the one recorded, if it is of that revision
    (asked for by a person, it stays theirs), else a new one."""
    pending = state.pending_approval
    if pending is not None and pending.revision == revision:
        return pending.model_copy(update={"asked_by": pending.asked_by or asked_by})
    return PendingApproval(revision=revision, required=required, since=now, asked_by=asked_by)


def _claim_pending(
    workspace: Workspace, state: EnvironmentState, decision: Admission, *, asked_by: str | None
) -> None:
    """A person asks for the revision the environment's own promotion waits approvals of:
    the pending approval becomes their request (the completing approval promotes it)."""
    pending = state.pending_approval
    if decision.wait is not Wait.APPROVAL or asked_by is None or pending is None:
        return
    if pending.revision != decision.revision or pending.asked_by is not None:
        return
    claimed = pending.model_copy(update={"asked_by": asked_by})
    workspace.store.save_environment(state.model_copy(update={"pending_approval": claimed}))


def _event_kind(wait: Wait) -> str:
    if wait is Wait.SUSPENDED:
        return "request.held"
    return "revision.untrusted" if wait is Wait.BLOCKED else f"promotion.{wait}"


def _signature_data(decision: Admission) -> dict[str, str | None]:
    """What a `revision.untrusted` event says of the signature: why (in words, and as one
    of engine.signing.Seal), and the key and signer git found (None without a signature)."""
    found = decision.signature
    if decision.wait is not Wait.BLOCKED or found is None:
        return {}
    return {
        "reason": decision.reason,
        "seal": found.seal.value,
        "key": found.key,
        "signer": found.signer,
    }


def _wait_ends(decision: Admission) -> datetime | None:
    """When the wait ends: a soak's or a window's end; unknown for approvals, and for a
    suspension (its next look, `look_again_at`, is no end: only a resume lifts it)."""
    return None if decision.wait is Wait.SUSPENDED else decision.look_again_at
