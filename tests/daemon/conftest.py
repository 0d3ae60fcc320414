"""A world (repository, journal, control file) and daemons on it that are always stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters import metrics
from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.engine.recording import MakeRecorder
from gitopsd.runtime.service.announcing import Delivery
from gitopsd.runtime.service.daemon import Daemon
from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, layered())


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


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.01))


@pytest.fixture
def started(
    tmp_path: Path,
) -> Iterator[Callable[..., tuple[Daemon, FakeClock, ManualJobs, World]]]:
    """`started(files, delivery=None, control=None, recorder=None)`: an in-process daemon on
    a repo of `files`, its drivers controlled by `control` (see tests/runtime/driver.py), its
    metrics recorded by `recorder` (default: the Prometheus one)."""
    daemons: list[Daemon] = []

    def start(
        files: dict[str, str],
        *,
        delivery: Delivery | None = None,
        control: dict[str, Any] | None = None,
        recorder: MakeRecorder = metrics.recorder,
    ) -> tuple[Daemon, FakeClock, ManualJobs, World]:
        world = World.committed(tmp_path, files, **(control or {}))
        clock = FakeClock(datetime(2026, 12, 1, 12, 30, tzinfo=UTC))
        workspace = world.workspace(SqliteStore(tmp_path / "state.db"))
        workspace.clock = clock
        jobs = ManualJobs(clock.now)
        daemon = Daemon(
            workspace, jobs=jobs, poll_interval=3600, metrics=recorder, delivery=delivery
        )
        daemons.append(daemon)
        daemon.start()
        return daemon, clock, jobs, world

    yield start
    for daemon in daemons:
        daemon.stop(grace=5)
        daemon.workspace.store.close()
        daemon.workspace.source.close()


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def status(daemon: Daemon, name: str) -> str:
    state = daemon.workspace.store.get_environment(name)
    return state.status.value if state else "unknown"


InProcess = Callable[..., tuple[Daemon, "FakeClock", ManualJobs, World]]
