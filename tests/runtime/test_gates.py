"""Gates after apply: all pass -> verified; a failure leaves the environment failed at the new
revision, without rollback; retries; order; the protocol variables."""

from __future__ import annotations

import json
import sys
from typing import Any

from gitopsd.engine.ports import StateStore
from gitopsd.model.state import EnvironmentStatus, RunStatus, StepAction
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


def with_gates(*gates: dict[str, Any], size: int = 3) -> dict[str, str]:
    spec = {
        "variables": {"size": size},
        "gates": [
            {"command": [sys.executable, "driver.py", "gate"], "timeout": "30s", **gate}
            for gate in gates
        ],
    }
    manifest = {"apiVersion": "gitopsd.io/v1", "kind": "Environment"}
    manifest |= {"metadata": {"name": "dev"}, "spec": spec}
    return layered(**{"environments/dev.yaml": json.dumps(manifest)})


def gate_calls(world: World) -> list[dict[str, Any]]:
    return [entry for entry in world.journal() if entry["action"] == "gate"]


def test_gates_run_after_every_component_and_passing_them_verifies(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = world.commit(with_gates({"name": "smoke"}, {"name": "e2e"}))
    run = workspace.apply("dev")
    assert run.status is RunStatus.SUCCEEDED, run.error
    journal = world.journal()
    assert [e["component"] for e in journal[-2:]] == ["smoke", "e2e"]  # after the applies
    assert all(e["action"] == "apply" for e in journal[:-2])
    smoke = gate_calls(world)[0]
    assert smoke["revision"] == sha and smoke["environment"] == "dev"
    assert smoke["cwd"].endswith(f"checkouts/{sha}")  # the repo root of the checkout
    steps = [s for s in store.list_steps(run.id) if s.action is StepAction.GATE]
    assert [(s.component, s.status.value) for s in steps] == [
        ("smoke", "succeeded"),
        ("e2e", "succeeded"),
    ]
    state = store.get_environment("dev")
    assert state is not None and state.status is EnvironmentStatus.VERIFIED


def test_a_failed_gate_leaves_the_environment_failed_at_the_new_revision_without_rollback(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit(with_gates({"name": "smoke"}))
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    second = world.commit(with_gates({"name": "smoke"}, size=4))
    world.control(fail={f"smoke:gate@{second}": -1})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.startswith("gate smoke failed: exited with code 1")
    state = store.get_environment("dev")
    assert state is not None
    assert (state.revision, state.previous_revision) == (second, first)
    assert state.status is EnvironmentStatus.FAILED  # applied, but not verified
    assert "rollback" not in [e["action"] for e in world.journal()]
    assert world.calls().count("k8s") == 2  # applied at both revisions, never rolled back


def test_a_gate_is_retried_and_the_first_failing_gate_stops_the_rest(
    world: World, workspace: Workspace
) -> None:
    world.commit(with_gates({"name": "smoke", "retries": 1}, {"name": "e2e"}))
    world.control(fail={"smoke:gate": 1})  # the first try fails, the retry passes
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert [e["component"] for e in gate_calls(world)] == ["smoke", "smoke", "e2e"]

    world.commit(with_gates({"name": "smoke"}, {"name": "e2e"}, size=5))
    world.control(fail={"smoke:gate": -1})
    assert workspace.apply("dev").status is RunStatus.FAILED
    assert [e["component"] for e in gate_calls(world)][3:] == ["smoke"]  # e2e never ran
