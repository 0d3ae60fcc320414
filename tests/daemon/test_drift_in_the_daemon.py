"""Scheduled drift checks in the daemon: the cron fires on the injected clock, the check waits
its turn behind a running apply, reports land under .gitopsd/reports/<env>/, metrics count."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from gitopsd.api.app import create_app
from gitopsd.api.auth import Tokens
from gitopsd.runtime.control import Identity
from tests.api.conftest import JSON, TEST_RULES, TestClient
from tests.daemon.conftest import InProcess, eventually, status
from tests.daemon.harness import metric
from tests.runtime.test_drift_checks import with_checks
from tests.runtime.test_promotion_flow import environment


def drift_events(daemon: object) -> list[str]:
    store = daemon.workspace.store  # type: ignore[attr-defined]
    return [
        e.kind for e in reversed(store.list_events("dev")) if e.kind.startswith(("drift.", "run."))
    ]


def test_the_drift_schedule_fires_on_the_injected_clock_and_writes_reports(
    started: InProcess,
) -> None:
    dev = environment("dev", drift={"schedule": "*/30 * * * *"})
    daemon, clock, jobs, _world = started({**with_checks(), "environments/dev.yaml": dev})
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    reports = daemon.workspace.data_dir / "reports" / "dev"
    clock.current += timedelta(minutes=29)  # 12:59: not yet
    jobs.run_due()
    time.sleep(0.3)
    assert not reports.exists()
    state = daemon.workspace.state_root / "dev" / "k8s"
    (state / "tampered").write_text("")
    clock.current += timedelta(minutes=1)  # 13:00
    jobs.run_due()
    eventually(lambda: reports.exists() and len(list(reports.glob("*.json"))) == 1, "a report")
    report = json.loads(next(reports.glob("*.json")).read_text())
    assert report["result"] == "drifted" and report["revision"] == daemon.workspace.source.head()
    markdown = next(reports.glob("*.md")).read_text()
    assert "| `k8s` | **drifted** | 2 |" in markdown
    text = daemon.metrics()[0].decode()
    assert metric(text, "gitopsd_drift_checks_total", environment="dev", result="drifted") == 1
    assert metric(text, "gitopsd_drifted_components", environment="dev") == 1
    checked = metric(text, "gitopsd_last_drift_check_timestamp_seconds", environment="dev")
    assert checked == clock.current.timestamp()


def test_a_drift_check_waits_for_a_running_apply_and_remediates_when_allowed(
    started: InProcess,
) -> None:
    dev = environment("dev", drift={"remediate": True})
    daemon, _clock, _jobs, world = started({**with_checks(), "environments/dev.yaml": dev})
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    (daemon.workspace.state_root / "dev" / "net" / "tampered").write_text("")
    world.control(sleep={"dns:apply": 1.0})
    world.commit({**with_checks(), "environments/dev.yaml": dev, "components/dns/x.txt": "1"})
    eventually(lambda: status(daemon, "dev") == "reconciling", "the apply to start")
    check_id = daemon.submit_drift_check("dev", identity=Identity("alice"))
    eventually(lambda: "drift.checked" in drift_events(daemon), "the drift check")
    kinds = drift_events(daemon)
    assert kinds.index("run.finished") < kinds.index("drift.checked")  # waited its turn
    eventually(lambda: drift_events(daemon).count("drift.checked") == 2, "the check after repair")
    runs = daemon.runs("dev")["runs"]
    [remediation] = [run for run in runs if run["trigger"] == "remediation"]
    assert (remediation["actor"], remediation["status"]) == ("alice", "succeeded")
    steps = (daemon.run(remediation["id"]) or {})["steps"]
    assert [step["component"] for step in steps] == ["net"]
    assert check_id not in [run["id"] for run in runs]  # a check is not a run
    net = daemon.workspace.store.get_component("dev", "net")
    assert net is not None and net.drift.value == "in_sync"

    def counted(result: str) -> float | None:
        text = daemon.metrics()[0].decode()
        return metric(text, "gitopsd_drift_checks_total", environment="dev", result=result)

    eventually(lambda: counted("in_sync") == 1, "the check after repair counted")
    assert counted("drifted") == 1  # the check that found what was repaired


def test_a_drift_check_through_the_api_repairs_a_suspended_environment_when_asked(
    started: InProcess,
) -> None:
    """`{"remediate": true}` is `gitopsd drift --remediate`: a person asks, so suspension does
    not hold the repair; a check without it only reports the drift."""
    daemon, _clock, _jobs, _world = started(with_checks())
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    daemon.suspend("dev", reason="incident", identity=Identity("alice"))
    (daemon.workspace.state_root / "dev" / "net" / "tampered").write_text("")
    app = create_app(daemon, tokens=Tokens.none(), webhook_secret=None, rules=TEST_RULES)
    with TestClient(app, headers=JSON) as api:
        only_checked = api.post("/api/v1/environments/dev/drift")
        assert only_checked.status_code == 202, only_checked.text
        eventually(lambda: "drift.checked" in drift_events(daemon), "the first check")
        asked = api.post("/api/v1/environments/dev/drift", json={"remediate": True})
        assert asked.status_code == 202, asked.text
    recorded = daemon.workspace.store.get_request(asked.json()["id"])
    assert recorded is not None and recorded.remediate  # kept across a restart
    eventually(lambda: drift_events(daemon).count("drift.checked") == 3, "the check after repair")
    [remediation] = [r for r in daemon.runs("dev")["runs"] if r["trigger"] == "remediation"]
    assert remediation["status"] == "succeeded"
    net = daemon.workspace.store.get_component("dev", "net")
    assert net is not None and net.drift.value == "in_sync"
    state = daemon.workspace.store.get_environment("dev")
    assert state is not None and state.suspension is not None  # still suspended
