"""The walker: which threads work a run's steps, and how many run at once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.engine.ports import DriverRunner
from gitopsd.engine.stepping import Node
from gitopsd.model.state import Run, RunAction, StepAction, StepStatus
from gitopsd.runtime.runs.steps import Services, StepBook, waiting_on_driver
from gitopsd.runtime.runs.walking import Walk

RUN = Run(
    id="run-1",
    environment="dev",
    revision="a" * 40,
    action=RunAction.APPLY,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def independent(count: int) -> list[Node]:
    return [Node(f"c{n}", StepAction.APPLY) for n in range(count)]


def walk(nodes: list[Node], parallelism: int, tmp_path: Path, start: Any) -> None:
    """Walk `nodes` with `start` as their starter; every one of them is started."""
    store = MemoryStore()
    store.save_run(RUN)
    services = Services(
        store=store,
        drivers=cast(DriverRunner, None),  # the starters below call no driver runner
        clock=SystemClock(),
        state_root=tmp_path,
    )
    walker = Walk(services, RUN, nodes, StepBook([]), parallelism=parallelism, timeout=None)
    ending = walker.walk(start, lambda node, reason: StepStatus.FAILED)
    assert not ending.progress.unstarted


def test_steps_that_never_wait_on_a_driver_are_all_worked_by_the_walking_thread(
    tmp_path: Path,
) -> None:
    workers: set[str] = set()

    def start(node: Node) -> StepStatus:  # decided without a driver, as unchanged ones are
        workers.add(threading.current_thread().name)
        return StepStatus.SKIPPED

    walk(independent(40), 16, tmp_path, start)
    assert workers == {threading.current_thread().name}


@pytest.mark.parametrize("parallelism", [1, 3])
def test_workers_join_while_drivers_run_up_to_parallelism(tmp_path: Path, parallelism: int) -> None:
    lock = threading.Lock()
    running, most = 0, 0

    def start(node: Node) -> StepStatus:
        nonlocal running, most
        with waiting_on_driver():
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.15)
            with lock:
                running -= 1
        return StepStatus.SUCCEEDED

    walk(independent(6), parallelism, tmp_path, start)
    assert most == parallelism
