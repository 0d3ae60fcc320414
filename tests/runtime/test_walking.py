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


def services_of(store: MemoryStore, tmp_path: Path) -> Services:
    store.save_run(RUN)
    return Services(
        store=store,
        drivers=cast(DriverRunner, None),  # the starters below call no driver runner
        clock=SystemClock(),
        state_root=tmp_path,
    )


def walk(nodes: list[Node], parallelism: int, tmp_path: Path, start: Any) -> None:
    """Walk `nodes` with `start` as their starter; every one of them is started."""
    services = services_of(MemoryStore(), tmp_path)
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


class UnreadableForAWhile(MemoryStore):
    """A store whose runs cannot be read on the second and third look (a locked database)."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def get_run(self, run_id: str) -> Run | None:
        self.looks += 1
        if self.looks in (2, 3):
            raise OSError("database is locked")
        return super().get_run(run_id)


def test_a_cancel_is_seen_once_the_store_can_be_read_again(tmp_path: Path) -> None:
    store = UnreadableForAWhile()
    services = services_of(store, tmp_path)

    def start(node: Node) -> StepStatus:
        store.save_run(RUN.model_copy(update={"cancel_requested": True}))
        with waiting_on_driver():
            services.cancel.wait(10)  # a driver runs until its run is cancelled
        return StepStatus.CANCELLED if services.cancel.is_set() else StepStatus.SUCCEEDED

    walker = Walk(services, RUN, independent(1), StepBook([]), parallelism=1, timeout=None)
    began = time.monotonic()
    ending = walker.walk(start, lambda node, reason: StepStatus.FAILED)
    assert ending.cancelled
    assert store.looks >= 4
    assert time.monotonic() - began < 5  # seen at the fourth look, not at the driver's end
