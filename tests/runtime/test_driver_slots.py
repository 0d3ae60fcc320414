"""`parallelism` counts drivers: from 8 on, a step is taken ahead, recorded `running`, and
starts its driver the moment a slot frees; a stop meanwhile starts nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import Run, RunStatus, Step, StepStatus
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.world import World, component, environment

PARALLELISM = 8  # one step ahead


def nine_components(world: World, seconds: float) -> None:
    names = [f"c{n}" for n in range(PARALLELISM + 1)]
    files = {"environments/dev.yaml": environment("dev", parallelism=PARALLELISM)}
    files |= {f"components/{name}/component.yaml": component(name) for name in names}
    world.commit(files)
    world.control(sleep={f"{name}:apply": seconds for name in names})


def spans(world: World) -> list[dict[str, Any]]:
    path = world.journal_path.with_name("spans.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def most_at_once(world: World) -> int:
    """The most drivers that ran at the same time, from their start and end lines."""
    running = most = 0
    for line in sorted(spans(world), key=lambda s: (s["at"], s["event"] == "start")):
        running += 1 if line["event"] == "start" else -1
        most = max(most, running)
    return most


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def applying(
    workspace: Workspace, store: StateStore, ended: list[BaseException | Run] | None = None
) -> tuple[threading.Thread, Run]:
    """An apply of dev started in a thread, and its run once every step is taken: eight
    drivers running, the ninth step recorded running and waiting for a slot. `ended` gets
    what the apply returned or raised."""
    outcome = [] if ended is None else ended

    def apply() -> None:
        try:
            outcome.append(workspace.apply("dev"))
        except BaseException as error:  # the stop's Interrupted is the point
            outcome.append(error)

    thread = threading.Thread(target=apply)
    thread.start()
    wait_for(lambda: bool(store.unfinished_runs("dev")), "the run")
    run = store.unfinished_runs("dev")[0]

    def all_taken() -> bool:
        steps = store.list_steps(run.id)
        return sum(s.status is StepStatus.RUNNING for s in steps) == PARALLELISM + 1

    wait_for(all_taken, "nine steps recorded running")
    return thread, run


def test_a_step_taken_ahead_starts_its_driver_when_a_slot_frees(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    nine_components(world, seconds=1.0)
    thread, run = applying(workspace, store)
    assert len([s for s in spans(world) if s["event"] == "start"]) <= PARALLELISM
    thread.join(timeout=30)
    done = store.get_run(run.id)
    assert done is not None and done.status is RunStatus.SUCCEEDED
    assert len(world.calls()) == PARALLELISM + 1
    assert most_at_once(world) == PARALLELISM


def test_a_cancel_while_a_step_waits_for_a_slot_starts_nothing_more(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    nine_components(world, seconds=30)
    thread, run = applying(workspace, store)
    wait_for(lambda: len(spans(world)) == PARALLELISM, "eight drivers to start")
    store.save_run(run.model_copy(update={"cancel_requested": True}))
    thread.join(timeout=20)
    done = store.get_run(run.id)
    assert done is not None and done.status is RunStatus.CANCELLED
    assert {s.status for s in store.list_steps(run.id)} == {StepStatus.CANCELLED}
    starts = [s for s in spans(world) if s["event"] == "start"]
    assert len(starts) == PARALLELISM  # the ninth never started


def test_a_stop_while_a_step_waits_for_a_slot_leaves_it_to_the_resume(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """A shutdown lets running drivers finish and starts no new one: the step that waited
    for a slot stays recorded running, as a crash would leave it, and runs on resume."""
    nine_components(world, seconds=1.0)
    ended: list[BaseException | Run] = []
    thread, run = applying(workspace, store, ended)
    wait_for(lambda: len(spans(world)) == PARALLELISM, "eight drivers to start")
    workspace.draining.set()
    thread.join(timeout=30)
    assert [type(outcome).__name__ for outcome in ended] == ["Interrupted"]
    assert len([s for s in spans(world) if s["event"] == "start"]) == PARALLELISM
    steps = store.list_steps(run.id)
    assert sorted(s.status for s in steps).count(StepStatus.RUNNING) == 1
    assert len(world.calls()) == PARALLELISM  # the running drivers finished their work


class StepHistory(MemoryStore):
    """A store that remembers every status a step was saved with, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[str, StepStatus]] = []

    def save_step(self, step: Step) -> None:
        self.saved.append((step.component, step.status))
        super().save_step(step)


def test_a_failure_while_a_step_waits_for_a_slot_starts_nothing_more(world: World) -> None:
    """`on_failure: rollback` means no new component starts after a failure: the step
    waiting for a slot gives its `running` record back and is skipped with the run, and
    the failed driver's slot goes to nobody before the walk knows of the failure."""
    store = StepHistory()
    workspace = world.workspace(store)
    nine_components(world, seconds=1.0)
    sleeps = {f"c{n}:apply": 1.0 for n in range(1, PARALLELISM + 1)}
    world.control(sleep=sleeps | {"c0:apply": 0.5}, fail={"c0:apply": -1})
    try:
        run = workspace.apply("dev")
    finally:
        workspace.source.close()
    assert run.status is RunStatus.FAILED
    started = {s["key"] for s in spans(world) if s["event"] == "start"}
    assert "c8:apply" not in started
    assert [status for name, status in store.saved if name == "c8"][:2] == [
        StepStatus.RUNNING,  # taken ahead, waiting for a slot
        StepStatus.PENDING,  # given back when c0 failed
    ]
    steps = {s.component: s for s in store.list_steps(run.id) if s.action.value == "apply"}
    assert steps["c8"].status is StepStatus.SKIPPED
    assert steps["c8"].attempts == 0
