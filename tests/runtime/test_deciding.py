"""Runs of different environments decide their steps one at a time, and walk side by side."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.model.state import ComponentState, RunStatus
from tests.runtime.world import World, component, environment

READ_TIME = 0.2  # each read of an environment's components takes this long


class SlowReads(MemoryStore):
    """A store that notes how many environments read their components at the same moment:
    deciding a run's steps starts by reading them all."""

    def __init__(self) -> None:
        super().__init__()
        self._counting = threading.Lock()
        self._reading: set[str] = set()
        self.together: set[frozenset[str]] = set()

    def list_components(
        self, environment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ComponentState]:
        with self._counting:
            self._reading.add(environment)
            self.together.add(frozenset(self._reading))
        try:
            time.sleep(READ_TIME)
            return super().list_components(environment, after=after, limit=limit)
        finally:
            with self._counting:
                self._reading.discard(environment)


def test_two_environments_decide_one_after_the_other_and_walk_side_by_side(
    tmp_path: Path,
) -> None:
    files = {
        "environments/dev.yaml": environment("dev"),
        "environments/staging.yaml": environment("staging"),
        "components/net/component.yaml": component("net"),
    }
    world = World.committed(tmp_path, files, sleep={"net:apply": 1.0})
    store = SlowReads()
    workspace = world.workspace(store)
    try:
        with ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            runs = list(pool.map(workspace.apply, ["dev", "staging"]))
            took = time.monotonic() - started
    finally:
        workspace.source.close()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2
    assert frozenset({"dev", "staging"}) not in store.together  # never read at once
    assert {frozenset({"dev"}), frozenset({"staging"})} <= store.together
    # the two 1 s applies overlapped: one after the other would take over 2 s
    assert took < 2.0
