"""`POST /api/v1/runs/{id}/cancel` on a real `gitopsd serve`: a running run stops within a
second, its driver with it; a request that has not started yet never starts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess
from tests.github import manifests
from tests.github.fake_github import FakeGitHub
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, component, environment
from tests.store.test_sqlite_store import Locker

SLOW = 8.0


def run_of(served: DaemonProcess, run_id: str) -> dict[str, Any]:
    found: dict[str, Any] = served.get(f"/api/v1/runs/{run_id}").json()
    return found


def running_run(served: DaemonProcess) -> str:
    """The id of the run whose `net` driver is running (the daemon's first apply)."""
    found: list[str] = []

    def net_runs() -> bool:
        runs = served.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
        steps = {r["id"]: served.get(f"/api/v1/runs/{r['id']}").json()["steps"] for r in runs}
        found[:] = [
            run_id
            for run_id, shown in steps.items()
            if any(s["component"] == "net" and s["status"] == "running" for s in shown)
        ]
        return bool(found)

    served.wait_for(net_runs, what="net's driver to run")
    return found[0]


def test_cancel_stops_a_running_run_within_a_second_and_a_queued_one_never_runs(
    world: World, daemon: StartDaemon
) -> None:
    world.control(sleep={"net:apply": SLOW})
    served = daemon("--poll-interval", "1h")
    running = running_run(served)
    queued = served.post("/api/v1/environments/dev/runs", json={"action": "plan"}).json()["id"]
    assert run_of(served, queued)["status"] == "queued"  # dev is busy with the apply

    dropped = served.post(f"/api/v1/runs/{queued}/cancel")
    assert dropped.status_code == 202, dropped.text
    asked = time.monotonic()
    stopping = served.post(f"/api/v1/runs/{running}/cancel")
    assert stopping.status_code == 202, stopping.text
    served.wait_for(lambda: run_of(served, running)["status"] == "cancelled", what="the cancel")
    assert time.monotonic() - asked < 2.0  # within a second, and the HTTP polling
    assert "net" not in world.calls("apply")  # its driver was stopped, not waited for

    time.sleep(1.0)  # the worker takes the next request now, if there were one
    ended = run_of(served, queued)
    assert (ended["status"], ended["outcome"]) == ("done", "cancelled by local before it ran")
    assert world.calls("plan") == []
    again = served.post(f"/api/v1/runs/{running}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]
    assert served.post("/api/v1/runs/no-such-run/cancel").status_code == 404
    kinds = [
        e["kind"] for e in served.get("/api/v1/events", params={"env": "dev"}).json()["events"]
    ]
    assert "run.cancel_requested" in kinds


def test_a_cancel_reaches_the_workflow_run_a_github_actions_step_follows(
    world: World, daemon: StartDaemon, fake_github: FakeGitHub
) -> None:
    world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/cluster/component.yaml": manifests.cluster(fake_github.url),
        },
        replace=True,
    )
    fake_github.script.polls_queued = 10**6  # waits for a runner until cancelled
    served = daemon("--poll-interval", "1h", GITHUB_TOKEN=fake_github.token)
    served.wait_for(lambda: bool(fake_github.calls("GET", r"/runs/1001$")), what="the run")
    (run,) = served.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]

    assert served.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 202
    served.wait_for(lambda: run_of(served, run["id"])["status"] == "cancelled", what="the cancel")
    assert fake_github.runs[1001].cancelled and len(fake_github.dispatches()) == 1
    (step,) = run_of(served, run["id"])["steps"]
    assert "cancelled; asked GitHub to cancel workflow run" in (step["error"] or "")


def test_a_cancelled_head_stays_cancelled_when_the_daemon_restarts(
    world: World, daemon: StartDaemon
) -> None:
    """Without a restart a cancelled head is not applied again until a new commit or a
    person asks; a restart must not make it otherwise (nor for a head whose run failed)."""
    world.control(sleep={"net:apply": SLOW})
    served = daemon("--poll-interval", "1h")
    running = running_run(served)
    assert served.post(f"/api/v1/runs/{running}/cancel").status_code == 202
    served.wait_for(lambda: run_of(served, running)["status"] == "cancelled", what="the cancel")
    assert served.terminate() == 0
    applied = world.calls("apply")

    world.control()
    restarted = daemon("--poll-interval", "1h")
    time.sleep(2.0)  # the start's reconcile has asked for what it would ask for by now
    runs = restarted.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    assert [r["id"] for r in runs] == [running]
    assert world.calls("apply") == applied
    assert "cancelled" in restarted.logs()  # it says why the head is left as it is


def net_ended(spans: Path) -> bool:
    lines = [json.loads(line) for line in spans.read_text().splitlines()]
    return any(s["key"] == "net:apply" and s["event"] == "end" for s in lines)


def test_a_cancel_stops_the_drivers_at_once_while_the_store_is_locked(
    world: World, daemon: StartDaemon
) -> None:
    """Another process holds the store's write lock: the cancel cannot be recorded until it
    goes, but the run's drivers must stop at once all the same, not run on meanwhile."""
    world.control(sleep={"net:apply": SLOW * 2})
    served = daemon("--poll-interval", "1h")
    running = running_run(served)
    spans = world.journal_path.with_name("spans.jsonl")
    locker = Locker(served.data / "state.db")
    answers: list[int] = []
    try:
        asked = time.monotonic()
        thread = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{served.url}/api/v1/runs/{running}/cancel",
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                ).status_code
            )
        )
        thread.start()
        served.wait_for(lambda: net_ended(spans), what="net's driver to stop", timeout=SLOW)
        assert time.monotonic() - asked < 2.0
        assert not answers  # the flag waits for the lock
    finally:
        locker.release()
    thread.join(timeout=60)
    assert answers == [202]
    served.wait_for(lambda: run_of(served, running)["status"] == "cancelled", what="its end")
    events = served.get("/api/v1/events", params={"env": "dev"}).json()["events"]
    assert any(e["kind"] == "run.cancel_requested" and e["run_id"] == running for e in events)


def test_a_cancel_through_the_api_closes_at_once_a_run_a_killed_gitopsd_left(
    world: World, daemon: StartDaemon
) -> None:
    """It answered 202 as for a running run, and the idle daemon left the run `running` until
    dev was next taken."""
    served = daemon("--poll-interval", "1h")
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="dev")
    url = "/api/v1/environments/dev/suspension"  # keeps the daemon's own work off dev
    assert served.post(url, json={"reason": "a person applies"}).status_code == 200
    world.commit(layered(**{"components/net/component.yaml": component("net", inputs={"v": 2})}))
    world.control(kill_parent={"net:apply": "before"})
    assert world.gitopsd("apply", "--env", "dev").returncode == -9
    (left,) = [r for r in served.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
               if r["status"] == "running"]  # fmt: skip
    world.control()
    applied = world.calls("apply")

    answer = served.post(f"/api/v1/runs/{left['id']}/cancel")

    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "id": left["id"],
        "cancel_requested": True,
        "left_by_a_stopped_process": True,
    }
    served.wait_for(lambda: run_of(served, left["id"])["status"] == "cancelled", what="closed")
    assert world.calls("apply") == applied  # closed, not applied again
