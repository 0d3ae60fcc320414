"""One lifecycle for every action: cancel, run_timeout and run events for plan and destroy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from gitopsd.engine.ports import StateStore
from gitopsd.errors import ConflictError
from gitopsd.model.state import ComponentStatus, EnvironmentStatus, Run, RunAction, RunStatus
from gitopsd.runtime.runs.workspace import Workspace
from gitopsd.runtime.service import cancelling
from tests.runtime.world import World, component, environment

CHAIN = {
    "environments/dev.yaml": environment("dev"),
    "components/net/component.yaml": component("net"),
    "components/k8s/component.yaml": component("k8s", deps=("net",)),
    "components/app/component.yaml": component("app", deps=("k8s",)),
}
SLOW = 8.0


def cancel_once_running(
    store: StateStore, action: RunAction, start: Callable[[], object]
) -> tuple[Run, float]:
    """Start a run in a thread, cancel it through the store (as `gitopsd cancel` does) once
    a driver runs; return the finished run and the seconds from the cancel to its end."""
    thread = threading.Thread(target=start)
    thread.start()
    deadline = time.monotonic() + 10
    running = None
    while running is None and time.monotonic() < deadline:
        runs = [r for r in store.unfinished_runs("dev") if r.action is action]
        steps = store.list_steps(runs[0].id) if runs else []
        running = runs[0] if any(s.status.value == "running" for s in steps) else None
        time.sleep(0.02)
    assert running is not None, "no driver started"
    time.sleep(0.2)  # the driver is well under way
    found = store.get_run(running.id)
    assert found is not None
    cancelled_at = time.monotonic()
    store.save_run(found.model_copy(update={"cancel_requested": True}))
    thread.join(timeout=SLOW * 3)
    took = time.monotonic() - cancelled_at
    finished = store.get_run(running.id)
    assert finished is not None
    return finished, took


def kinds(store: StateStore, run: Run) -> list[str]:
    return [e.kind for e in reversed(store.list_events(run_id=run.id))]


def test_cancel_stops_a_destroy_within_a_second_and_leaves_the_rest_deployed(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(CHAIN)
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.control(sleep={f"{n}:destroy": SLOW for n in ("net", "k8s", "app")})
    run, took = cancel_once_running(store, RunAction.DESTROY, lambda: workspace.destroy("dev"))
    assert took < 1.0
    assert run.status is RunStatus.CANCELLED
    assert world.calls("destroy") == []  # the running one was stopped before it finished
    assert {s.name for s in store.list_components("dev")} == {"net", "k8s", "app"}
    assert kinds(store, run)[0] == "run.started" and kinds(store, run)[-1] == "run.finished"


def test_cancel_stops_a_plan_within_a_second(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(CHAIN)
    world.control(sleep={"net:plan": SLOW})
    run, took = cancel_once_running(store, RunAction.PLAN, lambda: workspace.plan("dev"))
    assert took < 1.0
    assert run.status is RunStatus.CANCELLED
    assert "net" not in world.calls("plan")  # the slow one was stopped


def test_a_plan_records_its_start_and_end_like_every_run(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(CHAIN)
    run, _ = workspace.plan("dev")
    assert run.status is RunStatus.SUCCEEDED and run.started_at is not None
    assert kinds(store, run) == ["run.started", "run.finished"]
    assert store.get_environment("dev") is None  # a plan changes nothing


def test_run_timeout_stops_and_fails_a_run(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit({**CHAIN, "environments/dev.yaml": environment("dev", run_timeout="1s")})
    world.control(sleep={"net:apply": SLOW})
    started = time.monotonic()
    run = workspace.apply("dev")
    assert time.monotonic() - started < 3.0
    assert run.status is RunStatus.FAILED and "run_timeout" in (run.error or "")
    assert world.calls() == []  # net's driver was stopped; k8s and app never started
    assert [s.status for s in store.list_components("dev")] == [ComponentStatus.FAILED]
    assert "run.timed_out" in kinds(store, run)
    state = store.get_environment("dev")
    assert state is not None and state.status is EnvironmentStatus.FAILED


def test_run_timeout_stops_a_destroy_too(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit({**CHAIN, "environments/dev.yaml": environment("dev", run_timeout="1s")})
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.control(sleep={"app:destroy": SLOW})
    run = workspace.destroy("dev")
    assert run.status is RunStatus.FAILED and "run_timeout" in (run.error or "")
    assert len(store.list_components("dev")) == 3


def test_a_failed_health_check_fails_the_component_and_rolls_back(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit({**CHAIN, "components/app/component.yaml": component(
        "app", deps=("k8s",), health=True)})  # fmt: skip
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.commit({**CHAIN, "components/app/component.yaml": component(
        "app", deps=("k8s",), health=True, inputs={"v": 2})})  # fmt: skip
    world.control(fail={"app:health": -1})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED and "rolled back" in (run.error or "")
    state = store.get_component("dev", "app")
    assert state is not None and state.revision == first


def test_cancel_stops_a_rollback_within_a_second_and_names_what_was_left(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.control(sleep={"net:apply": 2.0})
    world.commit(CHAIN)
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    changed = {n: component(n, deps=d, inputs={"v": 2}) for n, d in
               (("net", ()), ("k8s", ("net",)), ("app", ("k8s",)))}  # fmt: skip
    new = world.commit(
        {**CHAIN, **{f"components/{n}/component.yaml": m for n, m in changed.items()}}
    )
    world.control(sleep={"net:apply": 2.0}, fail={f"app:apply@{new}": -1})
    result: list[Run] = []
    thread = threading.Thread(target=lambda: result.append(workspace.apply("dev")))
    thread.start()
    deadline = time.monotonic() + 20
    rolling = None
    while rolling is None and time.monotonic() < deadline:
        runs = store.unfinished_runs("dev")
        steps = store.list_steps(runs[0].id) if runs else []
        net = [s for s in steps if (s.component, s.action.value) == ("net", "rollback")]
        rolling = runs[0] if net and net[0].status.value == "running" else None
        time.sleep(0.02)
    assert rolling is not None, "the rollback of net never started"
    cancelled_at = time.monotonic()
    store.save_run(rolling.model_copy(update={"cancel_requested": True}))
    thread.join(timeout=10)
    assert time.monotonic() - cancelled_at < 1.0
    (run,) = result
    assert run.status is RunStatus.FAILED
    assert run.error == "failed: app; rollback incomplete: net"  # app and k8s were rolled back


def test_a_plan_left_running_by_a_crash_is_closed_with_its_finish_event(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = world.commit(CHAIN)
    now = workspace.clock.now()
    crashed = Run(id="plan-1", environment="dev", revision=sha, action=RunAction.PLAN,
                  status=RunStatus.RUNNING, created_at=now, started_at=now)  # fmt: skip
    store.save_run(crashed)
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED  # resumes (closes) it first
    closed = store.get_run("plan-1")
    assert closed is not None and closed.status is RunStatus.CANCELLED
    assert kinds(store, closed) == ["run.finished"]


def test_a_cancel_asked_again_after_its_flag_could_not_be_stored_is_recorded(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """The daemon stopped its own run at once, but the store stayed locked past its patience:
    the API answered 503 ("try again"), the run ended cancelled without the flag, and asking
    again was a 409 "already cancelled", with nobody recorded as having asked."""
    sha = world.commit(CHAIN)
    now = workspace.clock.now()
    ended = Run(id="run-1", environment="dev", revision=sha, action=RunAction.APPLY,
                status=RunStatus.CANCELLED, created_at=now, finished_at=now)  # fmt: skip
    store.save_run(ended)
    again = cancelling.cancel_run(store, "run-1", actor="alice", clock=workspace.clock)
    assert again is not None and again.cancel_requested
    (asked,) = [e for e in store.list_events(run_id="run-1") if e.kind == "run.cancel_requested"]
    assert asked.actor == "alice"
    with pytest.raises(ConflictError, match="already cancelled"):
        cancelling.cancel_run(store, "run-1", actor="bob", clock=workspace.clock)
