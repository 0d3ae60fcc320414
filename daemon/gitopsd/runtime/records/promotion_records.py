"""Promotion state as records: each environment's verified holds, kept where they change.

Pipeline: run start/finish -> **holds** -> admission. The holds an environment gave its
followers (and itself, for rollbacks) change at two moments only, and both are written in
the same transaction as the run's own record (runtime.runs.apply_records calls `on_started` and
`on_finished`):
- an apply run of another revision starts: the open hold ends (whatever the run's outcome:
  the environment left the revision it had verified);
- an apply run leaves the environment verified: a hold of its revision starts (unless it is
  the one still held); a run of some components that succeeded but left others not applied
  at its revision does not (runtime.runs.apply_records).
Starting an apply of another revision also clears the environment's current wait and pending
approval: it is doing something else now, and the next admission says what it waits for. An
apply of the revision the environment is at (a drift remediation, a retry) brings nothing in:
a promotion of another revision that waits (for approvals, a window, a soak, a trusted commit)
still waits, with its pending approval and who asked for it, and the environment shows that
wait again once the run verified it (`on_finished`). Cleared, an operator's promotion waiting
for approvals was lost: the approval that completed them promoted nothing.

At most KEEP_HOLDS holds are kept (the oldest go first): a rollback may return to any of
them. A record written before holds were kept (`holds_recorded` False) gets its holds
derived once from its runs, at its next apply run; until then readers derive them too.
"""

from __future__ import annotations

from gitopsd.engine import promotion
from gitopsd.engine.admitting import Wait
from gitopsd.engine.loading import EnvironmentEntry
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import (
    EnvironmentState,
    EnvironmentStatus,
    PendingApproval,
    Run,
    RunAction,
    RunStatus,
    VerifiedHold,
)

KEEP_HOLDS = 1000
DERIVE_FROM_RUNS = 5000  # runs read, once, to derive the holds of an older record


def holds(store: StateStore, environment: str) -> list[promotion.Hold]:
    """The revisions `environment` held verified, oldest first."""
    state = store.get_environment(environment)
    if state is None:
        return []
    return [promotion.Hold(h.revision, h.since, h.until) for h in recorded(store, state)]


def pending(
    state: EnvironmentState | None, entry: EnvironmentEntry | None
) -> PendingApproval | None:
    """The pending approval a promotion still waits for (EnvironmentState.pending_for), as
    the head's manifest has `auto`: what status and the metrics show, and what approvals
    complete. The record as it is when the manifests are not known (status only)."""
    if state is None:
        return None
    if entry is None:
        return state.pending_approval
    return state.pending_for(auto=entry.manifest.spec.promotion.auto)


def recorded(store: StateStore, state: EnvironmentState) -> list[VerifiedHold]:
    """The record's holds, or, for a record from before holds were kept, its runs' holds."""
    if state.holds_recorded:
        return list(state.holds)
    return _derive(store, state.name)


def on_started(store: StateStore, state: EnvironmentState, run: Run) -> EnvironmentState:
    """`state` as it is once `run` started (to be saved with the run)."""
    if run.action is not RunAction.APPLY or run.started_at is None:
        return state
    kept = recorded(store, state)
    if kept and kept[-1].until is None and kept[-1].revision != run.revision:
        kept[-1] = kept[-1].model_copy(update={"until": run.started_at})
    changes: dict[str, object] = {"holds": kept[-KEEP_HOLDS:], "holds_recorded": True}
    if not _still_waits(state, run):
        changes |= {"waiting": None, "pending_approval": None}
    return state.model_copy(update=changes)


def _still_waits(state: EnvironmentState, run: Run) -> bool:
    """Whether a promotion of another revision still waits once `run` starts: it re-applies
    the revision the environment is at, and the wait is not for that revision."""
    waits_for = {w.revision for w in (state.waiting, state.pending_approval) if w is not None}
    return state.revision == run.revision and run.revision not in waits_for


def on_finished(store: StateStore, state: EnvironmentState, run: Run) -> EnvironmentState:
    """`state` as it is once `run` finished (to be saved with the run)."""
    if run.action is not RunAction.APPLY or run.finished_at is None:
        return state
    kept = recorded(store, state)
    if state.status is EnvironmentStatus.VERIFIED and not (
        kept and kept[-1].until is None and kept[-1].revision == run.revision
    ):
        kept.append(VerifiedHold(revision=run.revision, since=run.finished_at))
    changes: dict[str, object] = {"holds": kept[-KEEP_HOLDS:], "holds_recorded": True}
    shown = _waiting_status(state)
    if state.status is EnvironmentStatus.VERIFIED and shown is not None:
        changes["status"] = shown  # verified, and still waiting for what it waited for
    return state.model_copy(update=changes)


def _waiting_status(state: EnvironmentState) -> EnvironmentStatus | None:
    """The status the environment's wait shows (as admission recorded it), if it has one of
    its own: waiting for approvals or a window, or blocked."""
    return Wait(state.waiting.kind).shown_status if state.waiting is not None else None


def _derive(store: StateStore, environment: str) -> list[VerifiedHold]:
    """The holds the apply runs on record imply (the rule in the module doc, replayed)."""
    runs = [
        run
        for run in store.list_runs(environment, limit=DERIVE_FROM_RUNS)
        if run.action is RunAction.APPLY and run.started_at is not None
    ]
    found: list[VerifiedHold] = []
    for run in sorted(runs, key=lambda r: (r.started_at, r.id)):
        current = found[-1] if found and found[-1].until is None else None
        if current is not None and current.revision != run.revision:
            found[-1] = current.model_copy(update={"until": run.started_at})
            current = None
        if run.status is RunStatus.SUCCEEDED and run.finished_at and current is None:
            found.append(VerifiedHold(revision=run.revision, since=run.finished_at))
    return found[-KEEP_HOLDS:]
