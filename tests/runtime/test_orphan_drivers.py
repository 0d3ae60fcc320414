"""Drivers recorded while they run; taking an environment over ends the ones still running,
and never signals a process that merely got a recorded pid."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.process_groups import start_time
from gitopsd.engine.ports import StateStore
from gitopsd.errors import OrphanError
from gitopsd.model.state import DriverProcess
from gitopsd.runtime.runs import orphan_drivers
from gitopsd.runtime.runs.orphan_drivers import end_orphans
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"


def spawn(code: str = "") -> subprocess.Popen[bytes]:
    """A process leading its own group, as drivers do, once it has run `code` (its signal
    handlers set): it says so on its output, then sleeps."""
    ready = f"{code}\nimport sys, time; print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen(
        [sys.executable, "-c", ready], start_new_session=True, stdout=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def record(process: subprocess.Popen[bytes], **changes: object) -> DriverProcess:
    fields: dict[str, object] = {
        "host": orphan_drivers.host(),
        "started": start_time(process.pid),
        "component": "net",
        "action": "apply",
        "run_id": "run-1",
        "recorded_at": datetime.now(UTC),
        **changes,
    }
    return DriverProcess(pid=process.pid, environment="dev", **fields)  # type: ignore[arg-type]


def still_runs(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_driver_is_recorded_while_it_runs_and_forgotten_after(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    world.control(sleep={"k8s:apply": 0.5})
    seen: list[DriverProcess] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            seen.extend(store.list_driver_processes("dev"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        workspace.apply("dev")
    finally:
        done.set()
        watcher.join()
    (k8s,) = {p for p in seen if p.component == "k8s"}  # one call, one record
    assert (k8s.action, k8s.run_id) == ("apply", store.list_runs("dev")[0].id)
    assert k8s.host == orphan_drivers.host() and k8s.started is not None
    assert store.list_driver_processes("dev") == []


def test_a_driver_ignoring_sigterm_is_killed_after_the_grace(
    store: StateStore, processes: list[subprocess.Popen[bytes]]
) -> None:
    processes.append(spawn(IGNORES_TERM))
    store.save_driver_process(record(processes[0]))
    began = time.monotonic()
    ended = end_orphans(store, "dev", clock=SystemClock(), grace=0.3)
    assert 0.3 <= time.monotonic() - began < 5
    assert [p.pid for p in ended] == [processes[0].pid]
    assert processes[0].wait(1) == -9
    assert store.list_driver_processes("dev") == []
    (event,) = store.list_events("dev")
    assert event.kind == "driver.orphan_ended" and "SIGKILL" in event.message
    assert event.run_id == "run-1" and event.data["component"] == "net"


def test_a_recorded_pid_with_another_start_time_is_never_signalled(
    store: StateStore, processes: list[subprocess.Popen[bytes]]
) -> None:
    processes.append(spawn())
    stranger = processes[0]
    store.save_driver_process(record(stranger, started=(start_time(stranger.pid) or 0) - 1))
    assert end_orphans(store, "dev", clock=SystemClock(), grace=0.1) == []
    time.sleep(0.2)
    assert still_runs(stranger)
    assert store.list_driver_processes("dev") == []
    assert store.list_events("dev") == []


def test_a_driver_of_another_host_is_reported_and_dropped_not_waited_for(
    store: StateStore, processes: list[subprocess.Popen[bytes]]
) -> None:
    processes.append(spawn())
    store.save_driver_process(record(processes[0], host="elsewhere"))
    assert end_orphans(store, "dev", clock=SystemClock(), grace=0.1) == []
    assert still_runs(processes[0])
    assert store.list_driver_processes("dev") == []
    assert [e.kind for e in store.list_events("dev")] == ["driver.orphan_elsewhere"]


def test_taking_the_lease_ends_a_recorded_driver_before_anything_runs(
    world: World, workspace: Workspace, store: StateStore, processes: list[subprocess.Popen[bytes]]
) -> None:
    world.commit(layered())
    processes.append(spawn())
    store.save_driver_process(record(processes[0]))
    workspace.apply("dev")
    assert processes[0].wait(1) == -15
    assert [e.kind for e in store.list_events("dev")][-1] == "driver.orphan_ended"


def test_a_driver_that_cannot_be_ended_keeps_the_environment_untouched(
    world: World, workspace: Workspace, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.commit(layered())
    monkeypatch.setattr(orphan_drivers, "KILLED_WAIT", 0.1)
    monkeypatch.setattr(orphan_drivers, "group_state", lambda *_: orphan_drivers.GroupState.RUNNING)
    store.save_driver_process(
        DriverProcess(
            host=orphan_drivers.host(),
            pid=2**22 + 7,  # above pid_max: no process has it
            started=1,
            environment="dev",
            component="net",
            action="apply",
            run_id="run-1",
            recorded_at=datetime.now(UTC),
        )
    )
    workspace.kill_grace = 0.1
    with pytest.raises(OrphanError, match="still runs after SIGKILL"):
        workspace.apply("dev")
    assert world.calls() == []
    assert store.list_runs("dev") == []
