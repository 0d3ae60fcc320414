"""SIGKILL right after every step boundary of an apply, a rollback, a destroy and a prune:
the next command resumes the run, and the drivers are called exactly as by a run never
interrupted: nothing lost, nothing done twice (issue 17, the fault suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import RunStatus
from tests.faults.boundaries import (
    Command,
    Operation,
    calls,
    copied,
    counting,
    killed_at,
    prepared,
    uninterrupted,
)
from tests.gitrepos import git
from tests.runtime.world import World, component, environment

PAIR = {
    "environments/dev.yaml": environment("dev", parallelism=1),
    "components/a/component.yaml": component("a"),
    "components/b/component.yaml": component(
        "b", deps=("a",), inputs={"a": "${{ components.a.outputs.id }}"}
    ),
}
INDEPENDENT = {
    "environments/dev.yaml": environment("dev", parallelism=1),
    "components/a/component.yaml": component("a"),
    "components/b/component.yaml": component("b"),
}
PRUNING = PAIR | {"environments/dev.yaml": environment("dev", parallelism=1, prune=True)}


def applied(world: World) -> None:
    done = world.gitopsd("apply", "--env", "dev")
    assert done.returncode == 0, done.stdout + done.stderr


def first_apply(world: World) -> Command:
    return ("apply", "--env", "dev")


def rollback_to_first(world: World) -> Command:
    first = git(world.repo, "rev-parse", "HEAD")
    applied(world)
    changed = component("b", deps=("a",), inputs={"a": "${{ components.a.outputs.id }}", "v": 2})
    world.commit(PAIR | {"components/b/component.yaml": changed})
    applied(world)
    return ("rollback", "--env", "dev", "--to", first)


def destroy_all(world: World) -> Command:
    applied(world)
    return ("destroy", "--env", "dev")


def prune_b(world: World) -> Command:
    applied(world)
    world.commit({k: v for k, v in PRUNING.items() if "/b/" not in k}, replace=True)
    return ("apply", "--env", "dev")


OPERATIONS = {
    "apply": Operation(PAIR, first_apply),
    "rollback": Operation(PAIR, rollback_to_first),
    "destroy": Operation(PAIR, destroy_all),
    "prune": Operation(PRUNING, prune_b),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_a_kill_after_any_step_boundary_is_resumed_without_loss_or_repeat(
    tmp_path: Path, name: str
) -> None:
    operation = OPERATIONS[name]
    template, command = prepared(tmp_path / "prepared", operation)
    count, expected = uninterrupted(template, command)
    assert count >= 2 and expected  # the operation crosses boundaries and calls drivers
    interrupted = 0
    for boundary in range(1, count + 1):
        found, left = killed_at(template, operation, command, boundary)
        assert found == expected, f"killed after step boundary {boundary} of {count}"
        interrupted += left
    assert interrupted >= count - 1  # the kills did leave runs to resume (all but the last)


def test_a_failed_run_killed_after_any_step_boundary_resumes_to_the_same_end(
    tmp_path: Path,
) -> None:
    """A step recorded failed spent its tries: the resumed run goes on as the failure had
    decided (nothing more starts, `a`'s rollback) rather than trying `a` again or starting
    `b`, which the failure held back. Resumed as the daemon does at its start: `gitopsd
    apply` would resume it and then try the revision again, as asked."""

    def failing_apply(world: World) -> Command:
        world.control(fail={"a:apply": -1})
        return ("apply", "--env", "dev")

    template, command = prepared(tmp_path / "prepared", Operation(INDEPENDENT, failing_apply))
    whole, since = copied(template, tmp_path / "whole")
    done = whole.gitopsd(*command, env=counting(whole.root / "writes"))
    assert done.returncode == 1, done.stdout + done.stderr
    expected = calls(whole, since)
    assert expected == {("apply", "a", 0): 1}  # b held back
    count = len((whole.root / "writes").read_text().splitlines())
    for boundary in range(1, count + 1):
        world, since = copied(template, tmp_path / f"killed-{boundary}")
        writes = counting(world.root / "writes", kill_at=boundary)
        assert world.gitopsd(*command, env=writes).returncode == -9
        store = SqliteStore(world.root / "data" / "state.db")
        try:
            (resumed,) = world.workspace(store).resume_unfinished("dev")
        finally:
            store.close()
        assert resumed.status is RunStatus.FAILED, f"after boundary {boundary}"
        assert calls(world, since) == expected, f"killed after step boundary {boundary}"
