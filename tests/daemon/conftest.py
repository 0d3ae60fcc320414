"""A world (repository, journal, control file) and daemons on it that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(tmp_path)
    made.control()
    made.commit(layered())
    return made


@pytest.fixture
def daemon(world: World) -> Iterator[StartDaemon]:
    """`daemon(*serve_flags, repo=..., **env)` starts one; all are killed at the end."""
    started: list[DaemonProcess] = []

    def start(*flags: str, repo: str | None = None, **env: str) -> DaemonProcess:
        process = DaemonProcess(world, repo=repo, **env)
        started.append(process)
        return process.start(*flags)

    yield start
    for process in started:
        process.stop()
