"""JSON log lines carry the run; the metrics count runs and component steps by result."""

from __future__ import annotations

import json

import gitopsd
from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import metric
from tests.runtime.world import World


def test_json_log_lines_of_a_run_carry_its_id_and_environment(
    world: World, daemon: StartDaemon
) -> None:
    served = daemon("--poll-interval", "1h", "--log-format", "json")
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="apply")
    lines = [json.loads(line) for line in served.logs().splitlines() if line.startswith("{")]
    assert lines and len(lines) == len(served.logs().splitlines())  # every line is JSON
    run_id = served.get("/api/v1/runs").json()["runs"][0]["id"]
    applied = [line for line in lines if line.get("event") == "component.applied"]
    assert sorted(line["message"].split()[0] for line in applied) == ["app", "dns", "k8s", "net"]
    assert {(line["environment"], line["run_id"]) for line in applied} == {("dev", run_id)}
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


def test_metrics_count_runs_and_component_steps(world: World, daemon: StartDaemon) -> None:
    world.control(fail={"dns:apply": -1})
    served = daemon("--poll-interval", "1h")
    served.wait_for(lambda: served.environment("dev")["status"] == "failed", what="a failed run")
    text = served.get("/metrics").text
    labels = {"environment": "dev", "action": "apply"}
    assert metric(text, "gitopsd_runs_total", **labels, result="failure") == 1
    assert metric(text, "gitopsd_run_duration_seconds_count", **labels) == 1
    assert (
        metric(text, "gitopsd_component_runs_total", **labels, component="dns", result="failure")
        == 1
    )
    assert (
        metric(
            text, "gitopsd_component_status", environment="dev", component="dns", status="failed"
        )
        == 1
    )
    assert (
        metric(
            text, "gitopsd_component_status", environment="dev", component="dns", status="applied"
        )
        == 0
    )
    assert metric(text, "gitopsd_build_info", version=gitopsd.__version__) == 1
    assert (metric(text, "gitopsd_leader"), metric(text, "gitopsd_leader_epoch")) == (1, 0)
    assert (
        metric(text, "gitopsd_environment_info", environment="dev", revision="", status="failed")
        == 1
    )
