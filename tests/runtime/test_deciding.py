"""Runs of different environments decide their steps one at a time, and walk side by side."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.model.state import RunStatus, Step
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.world import World, component, environment

RECORD_TIME = 0.2  # each write of a run's steps takes this long


class SlowRecords(MemoryStore):
    """A store that notes which environments' runs were recording their steps at the same
    moment: a run writes them all once it has decided them, at the end of its deciding."""

    def __init__(self) -> None:
        super().__init__()
        self._counting = threading.Lock()
        self._recording: set[str] = set()
        self.together: set[frozenset[str]] = set()

    def save_steps(self, steps: Iterable[Step]) -> None:
        listed = list(steps)
        environments = {self._environment(step.run_id) for step in listed}
        with self._counting:
            self._recording |= environments
            self.together.add(frozenset(self._recording))
        try:
            time.sleep(RECORD_TIME)
            super().save_steps(listed)
        finally:
            with self._counting:
                self._recording -= environments

    def _environment(self, run_id: str) -> str:
        run = self.get_run(run_id)
        assert run is not None
        return run.environment


def run_both(workspace: Workspace, action: str) -> list[RunStatus]:
    """`action` of dev and staging at once; their statuses."""

    def one(name: str) -> RunStatus:
        if action == "plan":
            return workspace.plan(name)[0].status
        run = workspace.apply(name) if action == "apply" else workspace.destroy(name)
        return run.status

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, ["dev", "staging"]))


def driver_calls(world: World, action: str, since: int) -> dict[str, tuple[float, float]]:
    """When the driver's `action` call of each environment started and ended, of the calls
    journaled after the first `since`."""
    calls = [entry for entry in world.journal()[since:] if entry["action"] == action]
    return {entry["environment"]: (entry["started"], entry["ended"]) for entry in calls}


@pytest.mark.parametrize("action", ["apply", "plan", "destroy"])
def test_two_environments_decide_one_after_the_other_and_walk_side_by_side(
    tmp_path: Path, action: str
) -> None:
    files = {
        "environments/dev.yaml": environment("dev"),
        "environments/staging.yaml": environment("staging"),
        "components/net/component.yaml": component("net"),
    }
    world = World.committed(tmp_path, files, sleep={f"net:{action}": 1.0})
    store = SlowRecords()
    workspace = world.workspace(store)
    try:
        if action == "destroy":  # something to destroy in each
            assert [workspace.apply(name).status for name in ("dev", "staging")] == [
                RunStatus.SUCCEEDED
            ] * 2
            store.together.clear()
        since = len(world.journal())
        statuses = run_both(workspace, action)
    finally:
        workspace.source.close()
    assert statuses == [RunStatus.SUCCEEDED] * 2
    assert frozenset({"dev", "staging"}) not in store.together  # never at once
    assert {frozenset({"dev"}), frozenset({"staging"})} <= store.together
    # the two 1 s driver calls overlapped: each started before the other ended (read from the
    # driver's journal; the wall time of both runs said so too, but not on a loaded machine)
    calls = driver_calls(world, action, since)
    assert set(calls) == {"dev", "staging"}
    (dev_start, dev_end), (staging_start, staging_end) = calls["dev"], calls["staging"]
    assert dev_start < staging_end and staging_start < dev_end
