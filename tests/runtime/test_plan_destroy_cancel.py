"""Plan runs, destroy runs, cancel, and the lease: one run per environment."""

from __future__ import annotations

import threading
import time

import pytest

from gitopsd.adapters.checkouts import CheckoutCache
from gitopsd.engine.ports import StateStore
from gitopsd.errors import BusyError, RunRefusedError
from gitopsd.model.state import EnvironmentStatus, Run, RunAction, RunStatus, StepStatus
from gitopsd.runtime.runs import leases
from gitopsd.runtime.runs.workspace import Workspace
from tests.adapters.test_checkouts import trees_in
from tests.runtime.test_apply_runs import DNS, layered
from tests.runtime.world import World, component, environment


def test_plan_asks_only_changed_components_and_changes_nothing(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    run, planned = workspace.plan("dev")
    assert run.action is RunAction.PLAN and run.status is RunStatus.SUCCEEDED
    by_name = {p.name: p for p in planned}
    assert world.calls("plan") == ["dns", "net"] or world.calls("plan") == ["net", "dns"]
    assert by_name["net"].changes is True and by_name["k8s"].changes is True  # waits on net
    assert store.list_components("dev") == []
    workspace.apply("dev")
    world.journal_path.unlink()
    _, planned = workspace.plan("dev")
    assert world.calls("plan") == [] and not any(p.changes for p in planned)


def test_a_driver_may_plan_no_changes_and_an_error_fails_the_plan(
    world: World, workspace: Workspace
) -> None:
    world.commit(layered())
    world.control(plan={"net": 0, "dns": 7})
    run, planned = workspace.plan("dev", components=["net", "dns"])
    by_name = {p.name: p for p in planned}
    assert by_name["net"].changes is False
    assert by_name["dns"].changes is None
    assert run.status is RunStatus.FAILED


def test_destroy_goes_in_reverse_order_and_removes_state(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    workspace.apply("dev")
    run = workspace.destroy("dev")
    assert run.status is RunStatus.SUCCEEDED
    order = world.calls("destroy")
    assert order.index("app") < order.index("k8s") < order.index("net")
    assert order.index("app") < order.index("dns")
    assert store.list_components("dev") == []
    state = store.get_environment("dev")
    assert state is not None and (state.revision, state.status) == (None, EnvironmentStatus.UNKNOWN)


def test_destroying_part_refuses_to_leave_dependents_behind(
    world: World, workspace: Workspace
) -> None:
    world.commit(layered())
    workspace.apply("dev")
    with pytest.raises(RunRefusedError, match="k8s depends on net and is not being destroyed"):
        workspace.destroy("dev", components=["net"])
    assert workspace.destroy("dev", components=["app"]).status is RunStatus.SUCCEEDED
    assert world.calls("destroy") == ["app"]


def test_a_failed_destroy_stops_there(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    workspace.apply("dev")
    world.control(fail={"k8s:destroy": -1})
    run = workspace.destroy("dev")
    assert run.status is RunStatus.FAILED
    assert "net" not in world.calls("destroy")
    # dns stands on nothing k8s needs: it ran beside k8s (destroys run within parallelism)
    assert {s.name for s in store.list_components("dev")} == {"net", "k8s"}


def test_cancel_stops_the_running_driver_and_the_run(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    world.control(sleep={"net:apply": 30, "dns:apply": 30})
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(workspace.apply("dev")))
    started = time.monotonic()
    thread.start()
    run_id = None
    while run_id is None and time.monotonic() - started < 10:
        runs = store.unfinished_runs("dev")
        run_id = runs[0].id if runs else None
        time.sleep(0.05)
    assert run_id is not None
    time.sleep(0.3)
    found = store.get_run(run_id)
    assert found is not None
    store.save_run(found.model_copy(update={"cancel_requested": True}))
    thread.join(timeout=20)
    assert time.monotonic() - started < 15
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert {s.status for s in store.list_steps(run_id)} == {StepStatus.CANCELLED}
    assert world.calls() == []  # the drivers were killed before they journaled


def test_one_run_per_environment(world: World, workspace: Workspace, store: StateStore) -> None:
    world.commit(layered())
    other = "elsewhere:1:x"
    assert store.acquire_lease("dev", other, now=workspace.clock.now(), ttl=60)
    with pytest.raises(BusyError, match=r"^dev is busy \(pid 1, host elsewhere\)$"):
        workspace.apply("dev")
    store.release_lease("dev", other)
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    dead = leases.holder_id().rsplit(":", 2)[0] + ":999999:dead"
    assert store.acquire_lease("dev", dead, now=workspace.clock.now(), ttl=60)
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED


def test_unchanged_components_are_recorded_as_skipped(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    workspace.apply("dev")
    world.commit(layered(**{DNS: component("dns", inputs={"x": 1})}))
    run = workspace.apply("dev")
    statuses = {s.component: s.status for s in store.list_steps(run.id)}
    assert statuses == {
        "net": StepStatus.SKIPPED,
        "dns": StepStatus.SUCCEEDED,
        "k8s": StepStatus.SKIPPED,
        "app": StepStatus.SKIPPED,
    }


def test_old_checkouts_are_pruned_but_not_what_environments_need(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    workspace.checkouts = CheckoutCache(workspace.source, world.root / "data" / "checkouts", keep=1)
    shas = []
    for size in (1, 2, 3):
        shas.append(
            world.commit(
                layered(**{"environments/dev.yaml": environment("dev", variables={"size": size})})
            )
        )
        assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    kept = trees_in(world.root / "data" / "checkouts")
    assert kept == sorted(shas[1:])  # current and previous revision of dev


def test_the_checkout_of_a_run_still_going_elsewhere_is_kept(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """Another environment's run (in this daemon or another process) may have drivers
    working in its checkout: pruning after dev's runs must leave it."""
    workspace.checkouts = CheckoutCache(workspace.source, world.root / "data" / "checkouts", keep=1)
    running = world.commit(layered())
    workspace.checkouts.path(running)
    store.save_run(
        Run(
            id="staging-run",
            environment="staging",
            revision=running,
            action=RunAction.APPLY,
            status=RunStatus.RUNNING,
            created_at=workspace.clock.now(),
        )
    )
    for size in (1, 2, 3):
        world.commit(
            layered(**{"environments/dev.yaml": environment("dev", variables={"size": size})})
        )
        assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert (world.root / "data" / "checkouts" / running).is_dir()
