"""Two real `gitopsd serve` processes on one PostgreSQL database and one repository: one leads,
the other stands by; a leader killed, a database restarted, a leader frozen mid-run. Each
component of the run is applied exactly once (the test driver journals every apply it
finishes), and the run ends succeeded under whichever daemon leads by then.

Short intervals keep these fast: standbys campaign every 0.2 s, and a silent leader's session
ends after 1.5 s, so failover takes at most ~1.7 s plus the new leader's start."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.daemon.harness import DaemonProcess, metric
from tests.postgres import PostgresServer
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment

LEADER_POLL, LEADER_TIMEOUT = 0.2, 1.5
BOUND = LEADER_POLL + LEADER_TIMEOUT
SLACK = 5.0  # a loaded CI machine: process start-up, the new leader's first queries
SLOW_POLL = ("--poll-interval", "1h")
ALL = ["app", "dns", "k8s", "net"]

Pair = Callable[[], tuple[DaemonProcess, DaemonProcess]]


DEV = {"environments/dev.yaml": environment("dev", variables={"size": 3}, parallelism=1)}


@pytest.fixture
def world(tmp_path: Path) -> World:
    """An environment without components yet: the run starts when a test commits them."""
    return World.committed(tmp_path, DEV)


def commit_components(world: World) -> None:
    """The four layered components, applied one at a time (one driver in flight at most)."""
    world.commit(layered(**DEV))


@pytest.fixture
def pair(world: World, postgres_url: str) -> Iterator[Pair]:
    """`pair()` starts two daemons on the database and returns the leader and the standby;
    both are killed (with any driver they left) at the end."""
    started: list[DaemonProcess] = []

    def start() -> tuple[DaemonProcess, DaemonProcess]:
        for name in ("a", "b"):
            process = DaemonProcess(
                world,
                state=postgres_url,
                data=world.root / f"data-{name}",  # two hosts: nothing shared but the database
                GITOPSD_LEADER_POLL=str(LEADER_POLL),
                GITOPSD_LEADER_TIMEOUT=str(LEADER_TIMEOUT),
            )
            started.append(process.launch(*SLOW_POLL))
        for process in started:
            process.wait_for(process.ready, what="the daemons to be ready")
        roles = {role(process): process for process in started}
        assert sorted(roles) == ["leader", "standby"], roles
        return roles["leader"], roles["standby"]

    yield start
    for process in started:
        for child in children(process):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
        if process.process is not None and process.process.poll() is None:
            process.process.send_signal(signal.SIGCONT)
        process.stop()


def readyz(process: DaemonProcess) -> dict[str, Any]:
    answer: dict[str, Any] = process.get("/readyz").json()
    return answer


def role(process: DaemonProcess) -> str:
    return str(readyz(process).get("role"))


def children(process: DaemonProcess) -> list[int]:
    """The driver processes `process` started (each leads a process group of its own)."""
    assert process.process is not None
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == process.process.pid and _is_driver(stat.parent):
            found.append(int(stat.parent.name))
    return found


def _is_driver(proc: Path) -> bool:
    try:
        return b"driver.py" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def run_steps(process: DaemonProcess) -> list[dict[str, Any]]:
    runs = process.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    shown = [process.get(f"/api/v1/runs/{run['id']}").json() for run in runs]
    return [step for run in shown for step in run.get("steps", [])]


def applying(process: DaemonProcess, component: str) -> bool:
    return any(
        step["component"] == component and step["status"] == "running"
        for step in run_steps(process)
    )


def verified(process: DaemonProcess) -> bool:
    return bool(process.environment("dev")["status"] == "verified")


def stored(url: str) -> dict[str, Any]:
    """Everything a daemon records, read straight from the database."""
    with psycopg.connect(url) as connection:
        return {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("runs", "steps", "components", "environments", "events")
        }


def the_run(url: str) -> tuple[str, str]:
    """The id and status of the run that applies the components (after the empty one)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT id, status FROM runs ORDER BY created_at").fetchall()
    assert len(rows) == 2, rows
    return rows[1][0], rows[1][1]


def test_the_standby_takes_over_a_killed_leader_and_applies_each_component_once(
    world: World, pair: Pair, postgres_url: str
) -> None:
    world.control(sleep={"net:apply": 0.5}, kill_parent={"k8s:apply": "before"})
    leader, standby = pair()
    assert [metric(p.get("/metrics").text, "gitopsd_leader") for p in (leader, standby)] == [1, 0]
    commit_components(world)
    killed = world.journal_path.with_name("killed-k8s:apply")
    leader.wait_for(killed.exists, what="the k8s driver to SIGKILL the leader mid-run")
    assert leader.process is not None and leader.process.wait(10) == -signal.SIGKILL
    standby.wait_for(lambda: role(standby) == "leader", what="the standby to lead")
    took = time.time() - killed.stat().st_mtime
    assert took < BOUND + SLACK, f"took over after {took:.1f}s"
    standby.wait_for(lambda: verified(standby), what="the new leader to finish the run")
    assert sorted(world.calls()) == ALL  # net and dns by the first, k8s and app by the second
    assert the_run(postgres_url)[1] == "succeeded"
    assert "leading at epoch 2" in standby.logs()
    assert metric(standby.get("/metrics").text, "gitopsd_leader_epoch") == 2  # 0 unless it leads


def test_a_database_restart_mid_run_loses_nothing_and_the_run_finishes(
    world: World, pair: Pair, postgres_url: str, postgres_server: PostgresServer
) -> None:
    world.control(sleep={"k8s:apply": 2.0})
    leader, standby = pair()
    commit_components(world)
    leader.wait_for(lambda: applying(leader, "k8s"), what="k8s to be applying")
    before = stored(postgres_url)
    postgres_server.restart()
    leader.wait_for(lambda: verified(leader), what="the run to finish after the restart")
    assert sorted(world.calls()) == ALL  # the k8s driver was stopped, then run once more
    run_id, status = the_run(postgres_url)
    assert status == "succeeded" and run_id in {row[0] for row in before["runs"]}
    after = stored(postgres_url)
    assert {row[0] for row in before["events"]} <= {row[0] for row in after["events"]}
    assert "no longer leading" in leader.logs()  # its lock session ended with the server
    assert {role(leader), role(standby)} == {"leader", "standby"}


def test_a_frozen_leader_is_fenced_out_and_records_nothing_when_it_wakes(
    world: World, pair: Pair, postgres_url: str
) -> None:
    world.control(sleep={"k8s:apply": 2.0})
    leader, standby = pair()
    commit_components(world)
    leader.wait_for(lambda: applying(leader, "k8s"), what="k8s to be applying")
    (driver,) = children(leader)
    frozen = [leader.process.pid, driver] if leader.process else []
    for pid in frozen:  # as `docker pause` freezes gitopsd and its drivers alike
        os.kill(pid, signal.SIGSTOP)
    standby.wait_for(lambda: role(standby) == "leader", what="the standby to lead")
    standby.wait_for(lambda: verified(standby), what="the new leader to finish the run")
    assert sorted(world.calls()) == ALL
    settled = stored(postgres_url)
    # the new leader, on this host, ended the frozen driver before running k8s again: it is a
    # zombie until its frozen parent wakes and reaps it
    assert Path(f"/proc/{driver}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    leader.wait_for(lambda: "fenced out" in leader.logs(), what="the old leader to step down")
    leader.wait_for(lambda: role(leader) == "standby", what="the old leader to stand by")
    assert readyz(leader)["leader"] == readyz(standby)["leader"]
    leader.wait_for(lambda: not children(leader), what="the frozen driver to be stopped")
    assert sorted(world.calls()) == ALL  # it was stopped before it finished: nothing twice
    assert stored(postgres_url) == settled  # and nothing recorded
    assert the_run(postgres_url)[1] == "succeeded"
