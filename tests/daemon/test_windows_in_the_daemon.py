"""In-process daemon on an injected clock: a commit held by a deny window is applied by itself
when the window ends, and a promotion waits out its soak, without sleeping for real."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.runtime.daemon import Daemon
from tests.runtime.test_promotion_flow import chain, environment
from tests.runtime.world import World


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
) -> Iterator[Callable[[dict[str, str]], tuple[Daemon, FakeClock, ManualJobs, World]]]:
    daemons: list[Daemon] = []

    def start(files: dict[str, str]) -> tuple[Daemon, FakeClock, ManualJobs, World]:
        world = World(tmp_path)
        world.control()
        world.commit(files)
        clock = FakeClock(datetime(2026, 12, 1, 12, 30, tzinfo=UTC))
        workspace = world.workspace(SqliteStore(tmp_path / "state.db"))
        workspace.clock = clock
        jobs = ManualJobs(clock.now)
        daemon = Daemon(workspace, jobs=jobs, poll_interval=3600)
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


def test_a_commit_held_by_a_deny_window_is_applied_when_the_window_ends(
    started: Callable[[dict[str, str]], tuple[Daemon, FakeClock, ManualJobs, World]],
) -> None:
    lunch = [{"kind": "deny", "schedule": "0 12 * * *", "duration": "1h", "timezone": "UTC"}]
    dev = environment("dev", windows=lunch)
    daemon, clock, jobs, world = started({**chain(), "environments/dev.yaml": dev})
    eventually(lambda: status(daemon, "dev") == "waiting_window", "dev to wait for the window")
    assert world.journal() == []
    clock.current += timedelta(minutes=29)
    jobs.run_due()
    time.sleep(0.5)
    assert world.journal() == [] and status(daemon, "dev") == "waiting_window"
    clock.current += timedelta(minutes=1)  # 13:00: the window ends
    assert jobs.run_due() >= 1
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]


def test_an_auto_promotion_starts_when_the_soak_ends(
    started: Callable[[dict[str, str]], tuple[Daemon, FakeClock, ManualJobs, World]],
) -> None:
    soaked_prod = {"promotion": {"from": "dev", "auto": True, "soak": "30m"},
                   "approvals": {"required": 0}}  # fmt: skip
    daemon, clock, jobs, world = started(chain(prod=soaked_prod))
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    time.sleep(0.5)
    assert status(daemon, "prod") == "unknown"  # soaking
    clock.current += timedelta(minutes=31)
    jobs.run_due()
    eventually(lambda: status(daemon, "prod") == "verified", "prod to be promoted")
    assert {entry["environment"] for entry in world.journal()} == {"dev", "prod"}
