"""Long lists come from pages of the store, every record of them once, in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.model.state import ComponentState, Run, RunAction, Step, StepAction
from gitopsd.runtime.records.pages import PAGE, each_component, each_run, each_step

T0 = datetime(2026, 12, 5, 10, tzinfo=UTC)


def run_with_steps(store: MemoryStore, count: int) -> Run:
    run = Run(id="r1", environment="dev", revision="abc", action=RunAction.APPLY, created_at=T0)
    store.save_run(run)
    store.save_steps(
        [
            Step(run_id=run.id, index=i, component=f"c{i}", action=StepAction.APPLY, revision="abc")
            for i in range(count)
        ]
    )
    return run


@pytest.mark.parametrize("count", [0, 1, PAGE, PAGE * 2 + 7])
def test_every_step_of_a_run_comes_once_in_order(count: int) -> None:
    store = MemoryStore()
    run = run_with_steps(store, count)
    assert [step.index for step in each_step(store, run.id)] == list(range(count))


def state(name: str, environment: str = "dev") -> ComponentState:
    return ComponentState(
        environment=environment, name=name, revision="abc", fingerprint="f", updated_at=T0
    )


@pytest.mark.parametrize("count", [0, 1, PAGE, PAGE * 2 + 7])
def test_every_component_state_comes_once_by_name(count: int) -> None:
    store = MemoryStore()
    names = [f"c{i:04d}" for i in range(count)]
    for name in reversed(names):
        store.save_component(state(name))
    store.save_component(state("c0000", "prod"))
    assert [found.name for found in each_component(store, "dev")] == names


@pytest.mark.parametrize("count", [0, 1, PAGE, PAGE * 2 + 7])
def test_every_run_of_an_action_comes_once_newest_first(count: int) -> None:
    """Runs started in the same second come by id: the store's order, kept across pages."""
    store = MemoryStore()
    applies = []
    for i in range(count):
        at = T0.replace(second=i // 3 % 60, minute=i // 180)
        store.save_run(Run(id=f"a{i:04d}", environment="dev", revision="abc",
                           action=RunAction.APPLY, created_at=at))  # fmt: skip
        store.save_run(Run(id=f"d{i:04d}", environment="dev", revision="abc",
                           action=RunAction.DESTROY, created_at=at))  # fmt: skip
        applies.append(f"a{i:04d}")
    store.save_run(Run(id="p", environment="prod", revision="abc", action=RunAction.APPLY,
                       created_at=T0))  # fmt: skip
    found = [run.id for run in each_run(store, "dev", action=RunAction.APPLY)]
    assert found == applies[::-1]
