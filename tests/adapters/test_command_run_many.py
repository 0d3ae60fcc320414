"""Many command driver calls at once on a few threads: the same results as one call at a
time, never more than `parallelism` drivers running, and nothing left behind."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from gitopsd.adapters import child_processes, command_driver
from gitopsd.adapters.command_driver import CommandDriverRunner
from gitopsd.engine.ports import DriverResult
from tests.adapters.test_command_driver import (
    CHATTY,
    chatty_output_is_capped,
    escaping_call,
    kill_escaped,
    make_call,
    make_runner,
    python,
)

# each call records that it started, sleeps a little, reports how many ran at its start
CONCURRENCY = """
import os, sys, time
marks = os.environ["MARKS"]
me = os.path.join(marks, os.environ["GITOPSD_COMPONENT"])
open(me, "w").close()
seen = len(os.listdir(marks))
time.sleep(float(os.environ.get("PAUSE", "0.05")))
os.unlink(me)
print(f"{os.environ['GITOPSD_COMPONENT']} saw {seen}")
sys.exit(int(os.environ.get("CODE", "0")))
"""


@pytest.fixture
def runner(tmp_path: Path) -> CommandDriverRunner:
    (tmp_path / "checkout" / "components" / "network").mkdir(parents=True)
    return make_runner(tmp_path, kill_grace=1.0)


def script(tmp_path: Path) -> list[str]:
    path = tmp_path / "concurrency.py"
    path.write_text(CONCURRENCY)
    import sys

    return [sys.executable, str(path)]


def test_results_come_in_order_and_never_more_than_parallelism_run(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    calls = [
        make_call(
            tmp_path,
            script(tmp_path),
            component=f"c{n:02}",
            env={"MARKS": str(marks), "CODE": str(n % 3)},
        )
        for n in range(24)
    ]
    ended: list[int] = []
    results = runner.run_many(calls, parallelism=5, on_done=lambda i, _: ended.append(i))
    assert [r.exit_code for r in results] == [n % 3 for n in range(24)]
    assert [r.output.split(" ")[0] for r in results] == [f"c{n:02}" for n in range(24)]
    seen = [int(r.output.split(" saw ")[1]) for r in results]
    assert max(seen) <= 5 and max(seen) >= 2  # in parallel, within the limit
    assert sorted(ended) == list(range(24))
    assert list((tmp_path / "work").iterdir()) == []  # every inputs file removed


def test_timeouts_cancels_and_calls_that_cannot_start_end_each_on_their_own(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"MARKS": str(marks)}
    slow = {**env, "PAUSE": "30"}
    calls = [
        make_call(tmp_path, script(tmp_path), component="quick", env=env),
        make_call(tmp_path, script(tmp_path), component="slow", env=slow, timeout=0.3),
        make_call(tmp_path, ["/no/such/driver"], component="missing"),
        make_call(tmp_path, script(tmp_path), component="quick2", env=env),
    ]
    started = time.monotonic()
    results = runner.run_many(calls, parallelism=4)
    assert time.monotonic() - started < 10
    assert results[0].exit_code == 0 and results[3].exit_code == 0
    assert results[1].timed_out and results[1].error == "timed out after 0.3s"
    assert results[2].exit_code is None and "cannot start '/no/such/driver'" in (
        results[2].error or ""
    )
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    stopped = runner.run_many(
        [make_call(tmp_path, script(tmp_path), component=f"s{n}", env=slow) for n in range(3)],
        parallelism=3,
        cancel=cancel,
    )
    assert [r.cancelled for r in stopped] == [True, True, True]
    assert list((tmp_path / "work").iterdir()) == []


# records its pid, then waits for WAIT_FOR pids to be recorded (or sleeps 30 s without it)
PID_RECORDING = """
import os, time
pids = os.environ["PIDS"]
open(os.path.join(pids, str(os.getpid())), "w").close()
wanted = int(os.environ.get("WAIT_FOR", "0"))
deadline = time.monotonic() + (10 if wanted else 30)
while time.monotonic() < deadline and not (wanted and len(os.listdir(pids)) >= wanted):
    time.sleep(0.01)
"""


def test_an_exception_in_a_lane_kills_every_running_driver_and_is_raised(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    """Whoever hears of a finished driver fails (the store went away): the drivers still
    running are killed, not waited for, and the error reaches the caller."""
    pids = tmp_path / "pids"
    pids.mkdir()
    recording = tmp_path / "pid_recording.py"
    recording.write_text(PID_RECORDING)
    argv = [sys.executable, str(recording)]

    def failing_on_done(index: int, result: DriverResult) -> None:
        raise RuntimeError("the store went away")

    calls = [make_call(tmp_path, argv, component="quick", env={"PIDS": str(pids), "WAIT_FOR": "4"})]
    calls += [
        make_call(tmp_path, argv, component=f"slow{n}", env={"PIDS": str(pids)}) for n in range(3)
    ]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the store went away"):
        runner.run_many(calls, parallelism=4, on_done=failing_on_done)
    assert time.monotonic() - started < 10  # the slow ones were killed, not waited for
    recorded = [int(path.name) for path in pids.iterdir()]
    assert len(recorded) == 4 and all(_gone(pid) for pid in recorded)
    assert list((tmp_path / "work").iterdir()) == []


def test_lanes_read_output_as_it_comes_and_never_wait_on_a_pipe_left_open(
    tmp_path: Path,
) -> None:
    (tmp_path / "checkout" / "components" / "network").mkdir(parents=True)
    runner = make_runner(tmp_path, max_output=1000)
    calls = [
        make_call(tmp_path, python(CHATTY), component="chatty"),
        escaping_call(tmp_path, component="escaping"),
        make_call(tmp_path, python(CHATTY), component="chatty-too"),
    ]
    try:
        started = time.monotonic()
        chatty, escaping, chatty_too = runner.run_many(calls, parallelism=2)
        assert time.monotonic() - started < 5.0
        assert (escaping.exit_code, escaping.output) == (0, "done\n")
        chatty_output_is_capped(chatty)
        chatty_output_is_capped(chatty_too)
    finally:
        kill_escaped(tmp_path)


@pytest.mark.parametrize("missing", ["in Python", "in the kernel"])
def test_without_pidfds_it_runs_a_thread_per_call(
    runner: CommandDriverRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    if missing == "in Python":
        monkeypatch.delattr(os, "pidfd_open")
    else:

        def no_such_call(pid: int, flags: int = 0) -> int:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", no_such_call)
    child_processes.pidfds_work.cache_clear()
    monkeypatch.setattr(command_driver, "Lanes", None)  # any use of lanes would fail
    marks = tmp_path / "marks"
    marks.mkdir()
    calls = [
        make_call(tmp_path, script(tmp_path), component=f"c{n}", env={"MARKS": str(marks)})
        for n in range(4)
    ]
    try:
        assert [r.exit_code for r in runner.run_many(calls, parallelism=2)] == [0, 0, 0, 0]
    finally:
        child_processes.pidfds_work.cache_clear()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
