"""A driver's process group as its runner reports it (`on_started`), and how a record of one
is checked against the processes that run now: a reused pid is never taken for the driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitopsd.adapters.process_groups import GroupState, group_state, start_time
from gitopsd.engine.ports import StartedDriver
from tests.adapters.test_command_driver import make_call, make_runner, python, wait_gone


@pytest.fixture(autouse=True)
def component(tmp_path: Path) -> None:
    (tmp_path / "checkout" / "components" / "network").mkdir(parents=True)


def spawn(code: str) -> subprocess.Popen[bytes]:
    """A process leading its own group, as drivers do."""
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_the_runner_reports_the_drivers_pid_and_start_time_while_it_runs(tmp_path: Path) -> None:
    seen: list[tuple[StartedDriver, GroupState]] = []

    def on_started(driver: StartedDriver) -> None:
        seen.append((driver, group_state(driver.pid, driver.started)))

    call = make_call(tmp_path, ["sh", "-c", "echo $$; sleep 0.2"])
    result = make_runner(tmp_path).run(call, on_started=on_started)
    ((driver, state),) = seen
    assert result.output.strip() == str(driver.pid)
    assert state is GroupState.RUNNING
    assert group_state(driver.pid, driver.started) is GroupState.GONE


def test_a_failing_on_started_kills_the_driver_and_propagates(tmp_path: Path) -> None:
    pids: list[int] = []

    def on_started(driver: StartedDriver) -> None:
        pids.append(driver.pid)
        raise OSError("the store is gone")

    call = make_call(tmp_path, python("import time; time.sleep(30)"))
    with pytest.raises(OSError, match="the store is gone"):
        make_runner(tmp_path).run(call, on_started=on_started)
    assert wait_gone(pids)
    assert os.listdir(tmp_path / "work") == []


def test_a_pid_whose_start_time_differs_is_a_stranger() -> None:
    process = spawn("import time; time.sleep(30)")
    try:
        started = start_time(process.pid)
        assert started is not None
        assert group_state(process.pid, started) is GroupState.RUNNING
        assert group_state(process.pid, started - 1) is GroupState.STRANGER
    finally:
        process.kill()
        process.wait()
    assert group_state(process.pid, started) is GroupState.GONE


def test_children_left_in_the_group_of_an_exited_leader_still_run(tmp_path: Path) -> None:
    ready = tmp_path / "child"
    leader = spawn(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(ready)!r}, 'w').write(str(child.pid))\n"
    )
    started = start_time(leader.pid)
    assert started is not None
    leader.wait()  # reaped: its pid is free, its group is not
    child = int(ready.read_text())
    try:
        assert group_state(leader.pid, started) is GroupState.RUNNING
    finally:
        os.kill(child, 9)
    assert wait_gone([child])
    assert group_state(leader.pid, started) is GroupState.GONE
