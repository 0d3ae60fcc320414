"""A killed gitopsd's drivers, children included, are ended by its helper; a gitopsd that
exits normally leaves no helper behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gitopsd.adapters.reaper import MARK
from tests.adapters.test_command_driver import wait_gone

# a process running one driver call (a shell that starts a child), printing both pids
RUNNER = """
import sys
from pathlib import Path
from gitopsd.adapters.command_driver import CommandDriverRunner
from gitopsd.engine.ports import DriverCall
folder = Path(sys.argv[1])
call = DriverCall(argv=("sh", "-c", "sleep 60 & echo $$ $! > pids; wait"), cwd=folder,
    environment="dev", component="net", revision="0" * 40, action="apply", inputs={},
    state_dir=folder / "state", timeout=120)
print(CommandDriverRunner(folder / "work", kill_grace=1.0).run(call).exit_code, flush=True)
"""


def helpers_of(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
            command = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat[stat.rfind(b")") + 2 :].split()[:2]
        if int(ppid) == parent and MARK.encode() in command and state != b"Z":
            found.append(int(name))
    return found


def the_helper_of(parent: int) -> int:
    """The one helper of `parent`, once it has started it (just after its first driver)."""
    deadline = time.monotonic() + 20
    while not (found := helpers_of(parent)):
        assert time.monotonic() < deadline, "no helper started"
        time.sleep(0.02)
    (helper,) = found
    return helper


def start(tmp_path: Path, *, before: str = "") -> tuple[subprocess.Popen[str], list[int]]:
    runner = subprocess.Popen(
        [sys.executable, "-c", before + RUNNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    pids = tmp_path / "pids"
    deadline = time.monotonic() + 20
    while not (pids.exists() and pids.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "the driver never started"
        time.sleep(0.02)
    return runner, [int(pid) for pid in pids.read_text().split()]


def test_the_drivers_of_a_killed_gitopsd_are_ended_children_included(tmp_path: Path) -> None:
    runner, driver_and_child = start(tmp_path)
    helper = the_helper_of(runner.pid)
    runner.send_signal(signal.SIGKILL)
    runner.communicate()
    # the driver would run 60 s; its helper ends it within its 1 s grace and a poll, given
    # 10 s here because two test suites side by side on two cores once made it miss 3 s
    assert wait_gone(driver_and_child, within=10)
    assert wait_gone([helper], within=10)


def test_a_normal_exit_leaves_no_helper_and_no_driver(tmp_path: Path) -> None:
    runner, driver_and_child = start(tmp_path)
    helper = the_helper_of(runner.pid)
    os.kill(driver_and_child[0], signal.SIGTERM)  # the call ends; the runner exits
    assert runner.communicate(timeout=20)[0].strip() == "None"
    assert wait_gone([helper, *driver_and_child], within=3)


def test_the_helper_sees_the_kill_at_once_not_at_its_next_look(tmp_path: Path) -> None:
    """Between two reads of its pipe the helper waits for the pipe's hang-up: with its looks
    a minute apart, a killed gitopsd's driver is still ended within seconds."""
    slow_looks = "import gitopsd.adapters.reaper as reaper; reaper.READ_EVERY = 60.0\n"
    runner, driver_and_child = start(tmp_path, before=slow_looks)
    helper = the_helper_of(runner.pid)
    runner.send_signal(signal.SIGKILL)
    runner.communicate()
    assert wait_gone(driver_and_child, within=10)
    assert wait_gone([helper], within=10)
