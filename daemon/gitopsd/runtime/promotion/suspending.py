"""Suspension (SPEC 3.6): stop and restart automatic work for one environment.

Like Flux's `suspend`: while an environment is suspended, admission holds its automatic work
(commits, auto promotion, scheduled drift remediation) and records it as held; manual runs
still work. The suspension is stored on the environment's record (who, why, since), shown by
`status` (`suspended`) and the `gitopsd_environment_info` status label, and each change is an
event (`environment.suspended`, `environment.resumed`) with its actor and reason. Nothing
held is lost: on resume the daemon asks for the environment's current candidate again.

Each change reads and writes the record inside one store transaction (SQLite takes its
write lock before the read), so two changes of the suspension never interleave.
"""

from __future__ import annotations

from gitopsd.errors import SuspensionRefusedError
from gitopsd.model.state import EnvironmentState, Suspension
from gitopsd.runtime.promotion import admission
from gitopsd.runtime.records import audit
from gitopsd.runtime.runs.workspace import Workspace

_BEFORE = " (suspended before by "  # how a rollback's reason names the suspension it found


def suspend(workspace: Workspace, environment: str, *, reason: str, actor: str) -> Suspension:
    """Suspend `environment`'s automatic work; SuspensionRefusedError if it is already."""
    return _write(workspace, environment, reason=reason, actor=actor, run_id=None, over=False)


def hold_for_rollback(
    workspace: Workspace, environment: str, *, reason: str, actor: str, run_id: str
) -> Suspension:
    """Suspend `environment`'s automatic work for rollback `run_id`, or restate a suspension
    already in force with the rollback's reason first and the earlier one after it: whoever
    resumes reads that resuming lets automatic work undo the rollback, not only the older
    reason they may know of."""
    return _write(workspace, environment, reason=reason, actor=actor, run_id=run_id, over=True)


def _write(
    workspace: Workspace,
    environment: str,
    *,
    reason: str,
    actor: str,
    run_id: str | None,
    over: bool,
) -> Suspension:
    admission.entry(workspace, environment)
    now = workspace.clock.now()
    store = workspace.store
    with store.transaction():
        state = store.get_environment(environment) or EnvironmentState(
            name=environment, updated_at=now
        )
        earlier = state.suspension
        if earlier is not None and not over:
            raise SuspensionRefusedError(_already(environment, earlier))
        if earlier is not None:
            reason = _restated(reason, earlier)
        suspension = Suspension(reason=reason, actor=actor, since=now, run_id=run_id)
        store.save_environment(state.model_copy(update={"suspension": suspension}))
        why = f": {reason}" if reason else ""
        audit.record(
            workspace,
            environment,
            "environment.suspended",
            f"{actor} suspended {environment}{why}",
            actor=actor,
            reason=reason,
        )
    return suspension


def resume(workspace: Workspace, environment: str, *, actor: str) -> Suspension:
    """Resume `environment`'s automatic work; the suspension it ended."""
    admission.entry(workspace, environment)
    store = workspace.store
    with store.transaction():
        state = store.get_environment(environment)
        if state is None or state.suspension is None:
            raise SuspensionRefusedError(f"{environment} is not suspended")
        ended = state.suspension
        held = state.waiting is not None and state.waiting.kind == "suspended"
        waiting = None if held else state.waiting
        store.save_environment(state.model_copy(update={"suspension": None, "waiting": waiting}))
        audit.record(
            workspace,
            environment,
            "environment.resumed",
            f"{actor} resumed {environment} (suspended by {ended.actor} since "
            f"{ended.since:%Y-%m-%d %H:%M:%S}Z)",
            actor=actor,
            reason=ended.reason,
        )
    return ended


def _restated(reason: str, earlier: Suspension) -> str:
    """A rollback's reason with the person's suspension it found in force after it; one a
    rollback made already is replaced, keeping the person's it carried (two rollbacks in a
    row do not nest their reasons)."""
    if earlier.run_id is not None:
        kept = earlier.reason.partition(_BEFORE)[2]
        return f"{reason}{_BEFORE}{kept}" if kept else reason
    return f"{reason}{_BEFORE}{earlier.actor}: {earlier.reason or 'no reason'})"


def _already(environment: str, suspension: Suspension) -> str:
    why = f" ({suspension.reason})" if suspension.reason else ""
    return (
        f"{environment} is suspended already, by {suspension.actor} since "
        f"{suspension.since:%Y-%m-%d %H:%M:%S}Z{why}"
    )
