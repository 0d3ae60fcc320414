"""The daemon applies a commit by itself, coalesces bursts, and survives bad manifests."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess, metric
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment

SLOW_POLL = ("--poll-interval", "1h")  # a local repository is watched, never polled


def at(daemon: DaemonProcess, revision: str) -> bool:
    found = daemon.environment("dev")
    return bool(found["revision"] == revision and found["status"] == "verified")


def test_the_head_is_applied_at_start_and_each_commit_right_after(
    world: World, daemon: StartDaemon
) -> None:
    first = world.commit(layered())
    served = daemon(*SLOW_POLL)
    served.wait_for(lambda: at(served, first), what="the first apply")
    second = world.commit(
        layered(**{"environments/dev.yaml": environment("dev", variables={"size": 5})})
    )
    served.wait_for(lambda: at(served, second), what="the commit to be applied", timeout=20)
    assert world.calls().count("k8s") == 2  # size feeds k8s only...
    assert world.calls().count("net") == 1  # ...so net ran once, at the first apply
    text = served.get("/metrics").text
    assert (
        metric(text, "gitopsd_runs_total", environment="dev", action="apply", result="success") == 2
    )
    assert metric(text, "gitopsd_commit_to_apply_seconds_count", environment="dev") == 2
    assert (
        metric(
            text, "gitopsd_environment_info", environment="dev", revision=second, status="verified"
        )
        == 1
    )
    assert (
        metric(
            text, "gitopsd_environment_info", environment="dev", revision=first, status="verified"
        )
        is None
    )


def test_a_burst_of_commits_gives_runs_for_some_and_records_the_rest_as_superseded(
    world: World, daemon: StartDaemon
) -> None:
    world.control(sleep={"k8s:apply": 0.5})
    served = daemon(*SLOW_POLL)
    first = served.environment("dev")
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="first apply")
    burst = [
        world.commit(
            layered(**{"environments/dev.yaml": environment("dev", variables={"size": n})})
        )
        for n in range(10, 30)
    ]
    served.wait_for(lambda: at(served, burst[-1]), what="the newest commit", timeout=60)
    runs = served.get("/api/v1/runs", params={"env": "dev", "limit": 100}).json()["runs"]
    applied = {run["revision"] for run in runs if run["trigger"] == "commit"} & set(burst)
    events = served.get("/api/v1/events", params={"env": "dev", "limit": 1000}).json()["events"]
    superseded = [e["data"]["revision"] for e in events if e["kind"] == "revision.superseded"]
    assert burst[-1] in applied
    assert len(applied) < len(burst) / 2, "a burst must not run once per commit"
    assert sorted(applied | set(superseded)) == sorted(burst), "every commit is run or recorded"
    assert not applied & set(superseded) and len(superseded) == len(set(superseded))
    assert first["name"] == "dev"


def test_invalid_manifests_are_reported_and_the_environment_keeps_its_revision(
    world: World, daemon: StartDaemon
) -> None:
    good = world.commit(layered())
    served = daemon(*SLOW_POLL)
    served.wait_for(lambda: at(served, good), what="the first apply")
    broken = world.commit(layered(**{"environments/dev.yaml": "spec: [unclosed"}))
    events = lambda: served.get("/api/v1/events", params={"limit": 50}).json()["events"]  # noqa: E731
    served.wait_for(
        lambda: any(e["kind"] == "revision.invalid" for e in events()), what="the invalid event"
    )
    invalid = next(e for e in events() if e["kind"] == "revision.invalid")
    assert invalid["data"]["revision"] == broken
    assert "environments/dev.yaml:2: invalid YAML" in invalid["message"]
    assert at(served, good) and served.ready()
    logged = [line for line in served.logs().splitlines() if "are invalid:" in line]
    assert logged and "until a commit fixes them" in logged[0]
    assert "(and 0 more)" not in logged[0]  # one problem: no "more" to speak of
    fixed = world.commit(
        layered(**{"environments/dev.yaml": environment("dev", variables={"size": 4})})
    )
    served.wait_for(lambda: at(served, fixed), what="the fix to be applied")


def test_an_invalid_manifest_named_in_bytes_that_are_not_utf8_is_reported_too(
    world: World, daemon: StartDaemon
) -> None:
    """A broken file named in Latin-1 (git names files in bytes) is one more invalid
    commit: recorded as an event naming its odd byte as `\\xe9`, the daemon ready."""
    good = world.commit(layered())
    served = daemon(*SLOW_POLL)
    served.wait_for(lambda: at(served, good), what="the first apply")
    latin = os.fsdecode(b"environments/d\xe9v.yaml")
    broken = world.commit(layered(**{latin: "spec: [unclosed"}))
    events = lambda: served.get("/api/v1/events", params={"limit": 50}).json()["events"]  # noqa: E731
    served.wait_for(
        lambda: any(e["kind"] == "revision.invalid" for e in events()),
        what="the invalid event",
        timeout=10,
    )
    invalid = next(e for e in events() if e["kind"] == "revision.invalid")
    assert invalid["data"]["revision"] == broken
    assert "environments/d\\xe9v.yaml:2: invalid YAML" in invalid["message"]
    assert at(served, good) and served.ready()


def test_an_operator_run_through_the_api_is_queued_and_runs(
    world: World, daemon: StartDaemon
) -> None:
    served = daemon(*SLOW_POLL)
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="first apply")
    response = served.post("/api/v1/environments/dev/runs", json={"action": "plan"})
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    served.wait_for(
        lambda: served.get(f"/api/v1/runs/{run_id}").json().get("status") == "succeeded",
        what="the plan run",
    )
    run = served.get(f"/api/v1/runs/{run_id}").json()
    assert (run["action"], run["trigger"], run["actor"]) == ("plan", "api", "local")
    refused = served.post(
        "/api/v1/environments/dev/runs", json={"action": "apply", "components": ["nope"]}
    )
    assert refused.status_code == 422 and "nope" in refused.json()["error"]


def serve_once(world: World) -> subprocess.CompletedProcess[str]:
    data = world.root / "data"
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", "serve", "--once", "--repo", str(world.repo),
         "--data-dir", str(data), "--state", f"sqlite:///{data / 'state.db'}"],
        env={**os.environ, "TEST_JOURNAL": str(world.journal_path),
             "TEST_CONTROL": str(world.control_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_serve_once_reconciles_and_exits_with_the_outcome(world: World) -> None:
    done = serve_once(world)
    assert done.returncode == 0, done.stderr
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]
    assert "stopping the drivers" not in done.stderr  # everything had finished
    world.control(fail={"k8s:apply": -1})
    world.commit(layered(**{"environments/dev.yaml": environment("dev", variables={"size": 9})}))
    failed = serve_once(world)
    assert failed.returncode == 1, failed.stderr
    assert "k8s" in failed.stderr


def test_a_head_invalid_at_start_is_not_ready_until_a_commit_fixes_it(
    world: World, daemon: StartDaemon
) -> None:
    world.commit(layered(**{"environments/dev.yaml": "spec: [unclosed"}))
    served = daemon(*SLOW_POLL)
    answer = served.get("/readyz")
    assert answer.status_code == 503 and answer.json()["ready"] is False
    assert "environments/dev.yaml:2: invalid YAML" in answer.json()["reason"]
    fixed = world.commit(layered())
    served.wait_for(served.ready, what="ready after the fix")
    served.wait_for(lambda: at(served, fixed), what="the fix to be applied")
