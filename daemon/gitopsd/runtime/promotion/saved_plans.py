"""Saved plans: `plan --save` records what the drivers said, `apply --plan ID` applies that.

A reviewer approves a plan, not a moving target, so a saved plan is applied exactly (its
revision, the components it said change) or not at all. It is refused as stale when what
it was made against moved:
- the environment's recorded state (its revision, its components' revisions, fingerprints
  and statuses, and the last apply or destroy run, summed up in a digest): another run
  applied or destroyed something. The last run is in it because a state can come back:
  applied, found bad and rolled back, the environment records what the plan was made against
  again, and the plan would bring back the revision just rolled back from;
- its candidate revision: the branch head for an environment that tracks the branch, what
  the admission rule would promote for one that follows an upstream;
- the fingerprint of a component it changes (a dependency's outputs changed its inputs);
- it was applied once already (the store's claim makes that exactly once, even when two
  applies race).
The checks run when the apply is asked for and again under the environment's lease, right
before the run is recorded, so nothing can move between the last check and the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gitopsd.engine.ports import StateStore
from gitopsd.errors import RunRefusedError, StalePlanError, UnknownPlanError
from gitopsd.model.state import (
    PlanDecision,
    PlannedChange,
    Run,
    RunAction,
    SavedPlan,
)
from gitopsd.runtime.promotion import admission
from gitopsd.runtime.records import audit
from gitopsd.runtime.runs.workspace import Workspace, new_run_id

if TYPE_CHECKING:
    from gitopsd.runtime.runs.plan_run import PlannedComponent


def save(
    workspace: Workspace,
    environment: str,
    *,
    revision: str | None = None,
    components: Sequence[str] | None = None,
    actor: str = "local",
) -> tuple[Run, list[PlannedComponent], SavedPlan | None]:
    """Plan `environment` as `plan` does and record the plan; None when a driver's plan
    failed (a plan that cannot be trusted is not kept). Without `revision`, the plan is of
    the environment's candidate: the branch head, or what its upstream verified."""
    digest, candidate = state_digest(workspace, environment), candidate_of(workspace, environment)
    target = workspace.source.resolve(revision) if revision else candidate
    target = target or _current(workspace, environment)
    fingerprints = _fingerprints(workspace, environment, target, components)
    prunes = workspace.manifests(target).environments[environment].manifest.spec.prune
    run, planned = workspace.plan(environment, revision=target, components=components, actor=actor)
    if any(item.changes is None for item in planned):
        return run, planned, None
    if state_digest(workspace, environment) != digest:
        raise StalePlanError(f"{environment} changed while it was planned; plan again")
    plan = SavedPlan(
        id=run.id,
        environment=environment,
        revision=run.revision,
        candidate=candidate,
        components=[_change(item, fingerprints, prunes=prunes) for item in planned],
        requested=list(components) if components else None,
        state_digest=digest,
        actor=actor,
        created_at=workspace.clock.now(),
    )
    workspace.store.save_plan(plan)
    changing = f"{len(plan.changes)} to change, {len(plan.destroys)} to destroy"
    message = f"{actor} saved plan {plan.id} of {run.revision[:12]} ({changing})"
    audit.record(workspace, environment, "plan.saved", message, actor=actor, plan=plan.id)
    return run, planned, plan


def load(
    workspace: Workspace,
    environment: str,
    plan_id: str,
    *,
    reaches: Callable[[str], bool] = lambda _: True,
) -> SavedPlan:
    """The saved plan `plan_id` of `environment`, if it can still be applied. A plan of an
    environment the caller does not `reach` (an API token scoped to others) is unknown, as
    that environment is to it: naming it would tell the token it exists."""
    plan = workspace.store.get_plan(plan_id)
    if plan is None or not reaches(plan.environment):
        raise UnknownPlanError(f"no saved plan {plan_id!r}")
    if plan.environment != environment:
        raise StalePlanError(f"plan {plan_id} is a plan of {plan.environment}, not {environment}")
    check(workspace, plan)
    return plan


def apply(
    workspace: Workspace,
    plan: SavedPlan,
    *,
    trigger: str = "cli",
    actor: str = "local",
    forced: bool = False,
    run_id: str | None = None,
) -> Run | None:
    """Apply exactly `plan`: its revision, the components it changes. None when it changes
    nothing: no run starts, the plan is only marked used. StalePlanError if it is stale."""
    run_id = run_id or new_run_id(workspace.clock)
    if not plan.has_work:  # no run, so no lease: checked and marked used right here
        check(workspace, plan)
        _claim(workspace, plan, None, actor=actor)
        return None

    def still_valid() -> None:  # under the lease: nothing can move before the run is recorded
        check(workspace, plan)
        _claim(workspace, plan, run_id, actor=actor)

    return workspace.apply(
        plan.environment,
        revision=plan.revision,
        components=components_of(plan),
        trigger=trigger,
        actor=actor,
        forced=forced,
        run_id=run_id,
        check=still_valid,
        plan=plan.id,
    )


def check(workspace: Workspace, plan: SavedPlan) -> None:
    """Raise StalePlanError, with the reason, if `plan` no longer matches its environment."""
    reason = staleness(workspace, workspace.store.get_plan(plan.id) or plan)
    if reason is not None:
        raise StalePlanError(f"plan {plan.id} is stale: {reason}")


def staleness(workspace: Workspace, plan: SavedPlan) -> str | None:
    """Why `plan` cannot be applied now, or None if it can."""
    environment = plan.environment
    if plan.applied_at is not None:
        return _used(plan)
    candidate = candidate_of(workspace, environment)
    if candidate != plan.candidate:
        return (
            f"the candidate revision of {environment} moved from {_short(plan.candidate)} "
            f"to {_short(candidate)}"
        )
    if state_digest(workspace, environment) != plan.state_digest:
        return f"the recorded state of {environment} changed since (another run ran)"
    now = _fingerprints(workspace, environment, plan.revision, plan.requested)
    moved = [name for name in plan.changes if now.get(name) != _fingerprint(plan, name)]
    if moved:
        return f"the desired state of {', '.join(moved)} changed since"
    return None


def candidate_of(workspace: Workspace, environment: str) -> str | None:
    """The revision `environment` would take now: the branch head when it tracks the branch,
    else what the admission rule says its upstream offers (None: nothing to take)."""
    return admission.admit(workspace, environment, record=False).revision


def state_digest(workspace: Workspace, environment: str) -> str:
    """A digest of what `environment` has recorded as applied (see the module doc). Times
    and drift results are left out: a drift check does not make a plan stale."""
    store = workspace.store
    state = store.get_environment(environment)
    summary = {
        "revision": state.revision if state else None,
        "components": sorted(
            [c.name, c.revision, c.fingerprint, c.status.value]
            for c in store.list_components(environment)
        ),
        "last_run": _last_change(store, environment),
    }
    encoded = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()


def _last_change(store: StateStore, environment: str) -> str | None:
    """The newest run that could have changed `environment`, whatever came of it: an apply
    (a rollback, a remediation) or a destroy; a plan changes nothing."""
    newest = [
        run
        for action in (RunAction.APPLY, RunAction.DESTROY)
        for run in store.list_runs(environment, limit=1, action=action.value)
    ]
    return max(newest, key=lambda run: (run.created_at, run.id)).id if newest else None


def _fingerprints(
    workspace: Workspace, environment: str, revision: str, components: Sequence[str] | None
) -> dict[str, str | None]:
    planned = workspace.preview(environment, revision=revision, components=components)
    return {decision.component: decision.fingerprint for decision in planned.decisions}


def components_of(plan: SavedPlan) -> list[str] | None:
    """What the apply of `plan` names: the components it changes; or, when it destroys
    orphans, none (only a whole apply prunes: the checks above make it the same plan)."""
    return None if plan.destroys else plan.changes


def _change(
    item: PlannedComponent, fingerprints: dict[str, str | None], *, prunes: bool
) -> PlannedChange:
    if item.action == "destroy":  # an orphan: destroyed by the apply only where it prunes
        decision = PlanDecision.DESTROY if prunes else PlanDecision.NO_CHANGE
    else:
        decision = PlanDecision.CHANGE if item.changes else PlanDecision.NO_CHANGE
    return PlannedChange(
        component=item.name, decision=decision, fingerprint=fingerprints.get(item.name)
    )


def _fingerprint(plan: SavedPlan, name: str) -> str | None:
    return next((c.fingerprint for c in plan.components if c.component == name), None)


def _current(workspace: Workspace, environment: str) -> str:
    """What a promoted environment with nothing to take is at: its plan changes nothing."""
    state = workspace.store.get_environment(environment)
    if state is None or state.revision is None:
        raise RunRefusedError(
            f"{environment} has nothing to plan: it was never applied and its upstream "
            "offers no revision yet"
        )
    return state.revision


def _claim(workspace: Workspace, plan: SavedPlan, run_id: str | None, *, actor: str) -> None:
    """Mark the plan used, with a `plan.applied` event; stale if an apply used it first."""
    if not workspace.store.claim_plan(plan.id, at=workspace.clock.now(), run_id=run_id):
        used = workspace.store.get_plan(plan.id)
        raise StalePlanError(f"plan {plan.id} is stale: {_used(used or plan)}")
    how = f"as run {run_id}" if run_id else "with nothing to change"
    message = f"{actor} applied plan {plan.id} {how}"
    audit.record(
        workspace, plan.environment, "plan.applied", message, actor=actor, plan=plan.id, run=run_id
    )


def _used(plan: SavedPlan) -> str:
    by = f"by run {plan.applied_by}" if plan.applied_by else "with nothing to change"
    return f"it was applied already, {by}"


def _short(revision: str | None) -> str:
    return revision[:12] if revision else "none"
