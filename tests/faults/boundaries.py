"""SIGKILL right after a step boundary: the moment a step's record (created, running,
succeeded...) is committed to the state store, before anything else happens.

A driver can only kill gitopsd while it runs (mid-step, tests/runtime/driver.py); here the
gitopsd process kills itself right after its Nth committed step write (`inject/
sitecustomize.py`, with this folder on PYTHONPATH), so every boundary of an operation can be
hit in turn: first counted in an uninterrupted run, then killed at each one and resumed.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitopsd.adapters.sqlite_store import SqliteStore
from tests.faults.disks import INJECT
from tests.gitrepos import git
from tests.runtime.world import World

Command = tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    """`prepare` brings a new world to where the operation starts and returns its command;
    `resume` is what an operator runs after a crash to finish it."""

    files: dict[str, str]
    prepare: Callable[[World], Command]
    resume: Callable[[Command], Command] = lambda command: command


def counting(writes: Path, *, kill_at: int = 0) -> dict[str, str]:
    path = os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, "GITOPSD_TEST_STEP_WRITES": str(writes)}
    return env | ({"GITOPSD_TEST_KILL_AT": str(kill_at)} if kill_at else {})


def calls(world: World, since: int) -> Counter[tuple[str, str, int]]:
    """The driver calls journaled after the first `since` entries, each revision named by
    its place in the branch's history (commits of two worlds differ in their times)."""
    history = git(world.repo, "rev-list", "--reverse", "HEAD").split()
    entries = world.journal()[since:]
    return Counter((e["action"], e["component"], history.index(e["revision"])) for e in entries)


def unfinished(world: World) -> tuple[int, int]:
    """How many runs are left unfinished, and how many were resumed (audit events), read
    from the state store itself: cheaper than two more gitopsd processes per kill."""
    store = SqliteStore(world.root / "data" / "state.db")
    try:
        events = store.list_events("dev", limit=1000)
        resumed = sum(1 for event in events if event.kind == "run.resumed")
        return len(store.unfinished_runs("dev")), resumed
    finally:
        store.close()


def prepared(root: Path, operation: Operation) -> tuple[Path, Command]:
    """A world brought to where the operation starts, once: each kill starts from a copy
    (applies to get there cost more than the kills themselves)."""
    root.mkdir()
    world = World.committed(root, operation.files)
    return world.root, operation.prepare(world)


def copied(template: Path, root: Path) -> tuple[World, int]:
    """A copy of the prepared world at `root`, and how many driver calls it journaled."""
    shutil.copytree(template, root, symlinks=True)
    world = World(root)
    return world, len(world.journal())


def uninterrupted(template: Path, command: Command) -> tuple[int, Counter[tuple[str, str, int]]]:
    """How many step boundaries the operation crosses, and the driver calls it makes."""
    world, since = copied(template, template.parent / "whole")
    writes = world.root / "writes"
    done = world.gitopsd(*command, env=counting(writes))
    assert done.returncode == 0, done.stdout + done.stderr
    return len(writes.read_text().splitlines()), calls(world, since)


def killed_at(
    template: Path, operation: Operation, command: Command, boundary: int
) -> tuple[Counter[tuple[str, str, int]], int]:
    """The driver calls of the operation SIGKILLed right after step boundary `boundary`,
    then resumed, in a copy of the prepared world, and how many runs the kill left
    unfinished; asserts both processes ended as they should."""
    world, since = copied(template, template.parent / f"killed-{boundary}")
    killed = world.gitopsd(*command, env=counting(world.root / "writes", kill_at=boundary))
    assert killed.returncode == -9, killed.stdout + killed.stderr
    left, _ = unfinished(world)
    resumed = world.gitopsd(*operation.resume(command))
    assert resumed.returncode == 0, f"after boundary {boundary}: {resumed.stdout}{resumed.stderr}"
    # every run finished, and the one the kill left was resumed, said in the audit trail
    assert unfinished(world) == (0, left), f"after boundary {boundary}"
    return calls(world, since), left
