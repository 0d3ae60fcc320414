"""The real Prometheus tools on gitopsd's metrics and alert rules (Debian's `prometheus`
package; `make test` and `.ci/run` install it): promtool's lint of a live daemon's /metrics,
a Prometheus server scraping a live daemon, and promtool's checks and tests of the rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess, free_port, metric
from tests.runtime.test_drift_checks import with_checks
from tests.runtime.test_promotion_flow import environment
from tests.runtime.world import World

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
assert RULES.is_dir(), RULES
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    (PROMTOOL is None or PROMETHEUS is None) and not os.environ.get("CI"),  # CI never skips
    reason="Prometheus is not installed: apt-get install prometheus (make test does it as root)",
)


def busy_daemon(world: World, daemon: StartDaemon) -> DaemonProcess:
    """A daemon that has applied dev, promoted prod, failed nothing and checked drift."""
    prod = {"promotion": {"from": "dev", "auto": True}, "approvals": {"required": 0}}
    world.commit(
        {
            **with_checks(),
            "environments/dev.yaml": environment("dev"),
            "environments/prod.yaml": environment("prod", **prod),
        }
    )
    served = daemon("--poll-interval", "1h")
    served.wait_for(lambda: served.environment("prod")["status"] == "verified", what="prod")
    assert served.post("/api/v1/environments/dev/drift").status_code == 202
    served.wait_for(
        lambda: metric(served.get("/metrics").text, "gitopsd_drift_checks_total",
                       environment="dev", result="in_sync") == 1,
        what="the drift check",
    )  # fmt: skip
    return served


def test_promtool_finds_nothing_to_lint_in_a_live_daemons_metrics(
    world: World, daemon: StartDaemon
) -> None:
    served = busy_daemon(world, daemon)
    exposition = served.get("/metrics").text
    for name in ("gitopsd_promotions_total", "gitopsd_gate_runs_total", "gitopsd_ready"):
        assert name in exposition
    assert PROMTOOL is not None
    linted = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert linted.stdout.strip() == "" and linted.stderr.strip() == ""


def test_a_real_prometheus_scrapes_a_live_daemon(
    world: World, daemon: StartDaemon, tmp_path: Path
) -> None:
    served = busy_daemon(world, daemon)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: gitopsd\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{served.port}']}}]\n"
    )
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        build = query_until(port, "gitopsd_build_info", lambda result: bool(result))
        assert build[0]["value"][1] == "1" and build[0]["metric"]["job"] == "gitopsd"
        assert build[0]["metric"]["version"] == __import__("gitopsd").__version__
        expected = metric(
            served.get("/metrics").text,
            "gitopsd_runs_total", environment="prod", action="apply", result="success",
        )  # fmt: skip
        runs = query_until(
            port,
            'gitopsd_runs_total{environment="prod",action="apply",result="success"}',
            lambda result: bool(result),
        )
        assert expected == 1 and float(runs[0]["value"][1]) == expected
        ready = query_until(port, "gitopsd_ready", lambda result: bool(result))
        assert ready[0]["value"][1] == "1"
        leaders = query_until(port, "sum by (job) (gitopsd_leader)", lambda result: bool(result))
        assert leaders[0]["value"][1] == "1"  # what GitopsdNoLeader and GitopsdSplitBrain sum
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def query_until(port: int, promql: str, done: object, timeout: float = 60) -> list[dict]:  # type: ignore[type-arg]
    """Ask Prometheus's HTTP API until `done(result)`; the result vector."""
    deadline = time.monotonic() + timeout
    result: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/query", params={"query": promql}, timeout=5
            ).json()
            result = answer["data"]["result"]
            if done(result):  # type: ignore[operator]
                return result
        except (httpx.TransportError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never answered {promql!r} as expected: {result}")


def test_the_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert checked.returncode == 0 and "SUCCESS: 13 rules found" in checked.stdout, checked.stdout
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    lines = (RULES / "alerts.yml").read_text().splitlines()
    alerts = {
        line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("- alert:")
    }
    cases = (RULES / "alerts.test.yml").read_text()
    assert all(f"alertname: {alert}" in cases for alert in alerts), "every alert has a test case"
