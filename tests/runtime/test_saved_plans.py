"""Saved plans in the runtime: what only the store can show (a dependency's outputs moving
under a plan), and that a stale plan never reaches a driver."""

from __future__ import annotations

import threading

import pytest

from gitopsd.engine.ports import StateStore
from gitopsd.errors import StalePlanError
from gitopsd.model.state import RunStatus, SavedPlan
from gitopsd.runtime.promotion import admission, saved_plans
from gitopsd.runtime.promotion.admission import Wait
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.test_apply_runs import APP, layered
from tests.runtime.world import World


def plan_of_a_touched_app(world: World, workspace: Workspace) -> SavedPlan:
    """dev applied, then `app`'s folder touched: a saved plan that changes `app` alone."""
    files = layered()
    world.commit(files)
    workspace.apply("dev")
    world.commit({**files, APP: files[APP] + "\n# touched\n"})
    _, _, plan = saved_plans.save(workspace, "dev")
    assert plan is not None and plan.changes == ["app"]
    return plan


def test_a_plan_whose_inputs_moved_is_stale(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    plan = plan_of_a_touched_app(world, workspace)
    k8s = store.get_component("dev", "k8s")
    assert k8s is not None  # re-applied elsewhere with the same files: new outputs, same state
    store.save_component(k8s.model_copy(update={"outputs": {"id": "k8s-rebuilt"}}))
    applied = len(world.calls())
    with pytest.raises(StalePlanError, match="the desired state of app changed"):
        saved_plans.apply(workspace, plan)
    assert len(world.calls()) == applied
    assert saved_plans.staleness(workspace, plan) == "the desired state of app changed since"


def test_a_plan_saved_while_the_state_moved_is_refused(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    files = layered()
    world.commit(files)
    workspace.apply("dev")
    world.commit({**files, APP: files[APP] + "\n# touched\n"})
    dns = store.get_component("dev", "dns")
    assert dns is not None
    world.control(sleep={"app:plan": 1.5})
    workspace.preview("dev")  # the new head is loaded: the save starts planning at once
    moved = dns.model_copy(update={"fingerprint": "another"})  # as another apply would leave it
    timer = threading.Timer(0.3, store.save_component, args=(moved,))
    timer.start()
    with pytest.raises(StalePlanError, match="dev changed while it was planned"):
        saved_plans.save(workspace, "dev")
    timer.join()


def test_a_saved_plan_that_failed_is_the_revisions_try_for_automatic_work(
    world: World, workspace: Workspace
) -> None:
    """The plan's apply names the plan's changed components, which made it look like an
    apply of some components: after it failed, the daemon's own apply of its revision ran
    the failing change again."""
    plan = plan_of_a_touched_app(world, workspace)
    world.control(fail={"app:apply": -1})
    run = saved_plans.apply(workspace, plan)
    assert run is not None and run.status is RunStatus.FAILED and run.plan == plan.id
    automatic = admission.admit(workspace, "dev", automatic=True)
    assert automatic.wait is Wait.NOTHING and f"({run.id}) ended failed" in automatic.reason
