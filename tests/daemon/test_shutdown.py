"""SIGTERM: running steps finish (or are stopped after the grace period), exit 0, and the
next start resumes the run without repeating what was done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess
from tests.runtime.world import World

SLOW_POLL = ("--poll-interval", "1h")


def stored_runs(world: World) -> list[dict[str, Any]]:
    """The runs as the state store has them, read by the CLI while no daemon runs."""
    data = world.root / "data"
    done = subprocess.run(
        [sys.executable, "-m", "gitopsd", "runs", "--env", "dev", "--output", "json",
         "--repo", str(world.repo), "--data-dir", str(data),
         "--state", f"sqlite:///{data / 'state.db'}"],
        env=os.environ, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    runs: list[dict[str, Any]] = json.loads(done.stdout)["runs"]
    return runs


def running(served: DaemonProcess) -> bool:
    runs = served.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    return any(run["status"] == "running" for run in runs)


def test_sigterm_lets_the_running_step_finish_and_the_restart_resumes_the_rest(
    world: World, daemon: StartDaemon
) -> None:
    world.control(sleep={"net:apply": 2.0})
    served = daemon(*SLOW_POLL, GITOPSD_SHUTDOWN_GRACE="30s")
    served.wait_for(lambda: running(served), what="the first run to start")
    assert served.terminate() == 0
    assert "net" in world.calls()  # finished within the grace period...
    assert "k8s" not in world.calls()  # ...but nothing new started after SIGTERM
    [interrupted] = stored_runs(world)
    assert interrupted["status"] == "running"

    world.control()
    restarted = daemon(*SLOW_POLL)
    restarted.wait_for(
        lambda: restarted.environment("dev")["status"] == "verified", what="the resumed run"
    )
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]  # each exactly once
    [resumed] = stored_runs(world)
    assert resumed["id"] == interrupted["id"] and resumed["status"] == "succeeded"


def test_past_the_grace_period_the_drivers_are_stopped_and_the_step_runs_again(
    world: World, daemon: StartDaemon
) -> None:
    world.control(sleep={"net:apply": 60})
    served = daemon(*SLOW_POLL, GITOPSD_SHUTDOWN_GRACE="0.5")
    served.wait_for(lambda: running(served), what="the first run to start")
    assert served.terminate(timeout=30) == 0
    assert "net" not in world.calls()  # killed before it finished
    assert [run["status"] for run in stored_runs(world)] == ["running"]

    world.control()
    restarted = daemon(*SLOW_POLL)
    restarted.wait_for(
        lambda: restarted.environment("dev")["status"] == "verified", what="the resumed run"
    )
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]
    assert "stopping the drivers" in served.logs()


def test_a_resumed_run_that_fails_is_not_followed_by_another_apply_of_the_head(
    world: World, daemon: StartDaemon
) -> None:
    """Killed mid-run, the daemon resumes the run at its next start; if the resumed run
    fails, the head is left failed, as a daemon never killed leaves it: the start does not
    also ask for the head again, which would apply the failing component a second time."""
    world.control(kill_parent={"k8s:apply": "before"}, fail={"app:apply": -1})
    first = DaemonProcess(world)
    first.launch(*SLOW_POLL)
    assert first.process is not None
    assert first.process.wait(timeout=60) == -9  # killed by k8s's driver
    restarted = daemon(*SLOW_POLL)
    restarted.wait_for(
        lambda: restarted.environment("dev")["status"] == "failed", what="the resumed run"
    )
    time.sleep(2.0)  # a request the start made meanwhile would have run by now
    runs = restarted.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    assert [run["status"] for run in runs] == ["failed"]
    assert world.calls().count("app") == 1
