"""Promotion state as records: each environment's verified holds, kept where they change.

Pipeline: run start/finish -> **holds** -> admission. The holds an environment gave its
followers (and itself, for rollbacks) change at two moments only, and both are written in
the same transaction as the run's own record and the environment's (runtime.runs.apply_records
calls `on_started` and `on_finished` inside it):
- an apply run of another revision starts: the open hold ends (whatever the run's outcome:
  the environment left the revision it had verified);
- an apply run leaves the environment verified: a hold of its revision starts (unless it is
  the one still held); a run of some components that succeeded but left others not applied
  at its revision does not (runtime.runs.apply_records).
This module decides those changes; the store keeps each hold as a row of its own
(StateStore.add_hold, end_hold), so a commit writes one row and never the list, and reading
the environment's record reads no hold.
Starting an apply of another revision also clears the environment's current wait and pending
approval: it is doing something else now, and the next admission says what it waits for. An
apply of the revision the environment is at (a drift remediation, a retry) brings nothing in:
a promotion of another revision that waits (for approvals, a window, a soak, a trusted commit)
still waits, with its pending approval and who asked for it, and the environment shows that
wait again once the run verified it (`on_finished`). Cleared, an operator's promotion waiting
for approvals was lost: the approval that completed them promoted nothing.

At most KEEP_HOLDS holds are kept (the oldest go first, in the write that adds one): a
rollback may return to any of them. The holds of a record written before holds were kept
were derived from its runs once, by the migration that moved holds into rows of their own
(adapters.migrations, version 9).
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
    VerifiedHold,
)

KEEP_HOLDS = 1000


def holds(store: StateStore, environment: str) -> list[promotion.Hold]:
    """The revisions `environment` held verified, oldest first."""
    return [promotion.Hold(h.revision, h.since, h.until) for h in store.list_holds(environment)]


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


def on_started(store: StateStore, state: EnvironmentState, run: Run) -> EnvironmentState:
    """`state` as it is once `run` started (to be saved with the run); ends the open hold of
    another revision in `store`. Called inside the transaction that saves them both."""
    if run.action is not RunAction.APPLY or run.started_at is None:
        return state
    held = _open_hold(store, state.name)
    if held is not None and held.revision != run.revision:
        store.end_hold(state.name, at=run.started_at)
    if _still_waits(state, run):
        return state
    return state.model_copy(update={"waiting": None, "pending_approval": None})


def _still_waits(state: EnvironmentState, run: Run) -> bool:
    """Whether a promotion of another revision still waits once `run` starts: it re-applies
    the revision the environment is at, and the wait is not for that revision."""
    waits_for = {w.revision for w in (state.waiting, state.pending_approval) if w is not None}
    return state.revision == run.revision and run.revision not in waits_for


def on_finished(store: StateStore, state: EnvironmentState, run: Run) -> EnvironmentState:
    """`state` as it is once `run` finished (to be saved with the run); starts a hold of its
    revision in `store` if it verified one not held already. Called inside the transaction
    that saves them both."""
    if run.action is not RunAction.APPLY or run.finished_at is None:
        return state
    if state.status is not EnvironmentStatus.VERIFIED:
        return state
    held = _open_hold(store, state.name)
    if held is None or held.revision != run.revision:
        hold = VerifiedHold(revision=run.revision, since=run.finished_at)
        store.add_hold(state.name, hold, keep=KEEP_HOLDS)
    shown = _waiting_status(state)
    # verified, and still waiting for what it waited for
    return state if shown is None else state.model_copy(update={"status": shown})


def _open_hold(store: StateStore, environment: str) -> VerifiedHold | None:
    """The environment's newest hold if it has not ended (only the newest one can be open)."""
    newest = store.list_holds(environment, newest=1)
    return newest[0] if newest and newest[0].until is None else None


def _waiting_status(state: EnvironmentState) -> EnvironmentStatus | None:
    """The status the environment's wait shows (as admission recorded it), if it has one of
    its own: waiting for approvals or a window, or blocked."""
    return Wait(state.waiting.kind).shown_status if state.waiting is not None else None
