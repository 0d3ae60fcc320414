"""Drift checks on real repositories and drivers: in sync, drifted, error, remediation, and
never at the same time as a run of the environment."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gitopsd.engine.ports import StateStore
from gitopsd.errors import BusyError
from gitopsd.model.state import DriftStatus, RunStatus
from gitopsd.runtime.drift import drift_reports, drifting
from gitopsd.runtime.promotion import suspending
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment

CHECK = """
import os, sys, time
from pathlib import Path
state = Path(os.environ["GITOPSD_STATE_DIR"])
tampered, applied = state / "tampered", state / "applied"
time.sleep(float(os.environ.get("CHECK_SLEEP", "0")))
if (state / "broken").exists():
    print("cannot reach the API: token=hunter22")
    sys.exit(1)
if tampered.exists() and tampered.stat().st_mtime_ns >= applied.stat().st_mtime_ns:
    print(f"{os.environ['GITOPSD_COMPONENT']}: node_count 3 -> 9")
    sys.exit(2)
print("in sync")
"""


def with_checks(*, timeout: str = "30s", **extra: Any) -> dict[str, str]:
    files = layered()
    for path, text in list(files.items()):
        if path.startswith("components/"):
            manifest = json.loads(text)
            manifest["spec"]["driver"]["check"] = [sys.executable, "../../check.py"]
            manifest["spec"]["driver"]["env"] = {"API_TOKEN": "hunter22", **extra}
            manifest["spec"]["timeout"] = timeout
            files[path] = json.dumps(manifest)
    return {**files, "check.py": CHECK}


def state_dir(workspace: Workspace, component: str) -> Path:
    return workspace.state_root / "dev" / component


def tamper(workspace: Workspace, component: str) -> None:
    time.sleep(0.01)  # a later mtime than the apply's
    (state_dir(workspace, component) / "tampered").write_text("")


@pytest.fixture
def applied(world: World, workspace: Workspace) -> Workspace:
    world.commit(with_checks())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    return workspace


def test_every_applied_component_is_checked_and_the_results_are_stored(
    applied: Workspace, store: StateStore
) -> None:
    report = drifting.check(applied, "dev")
    assert report.result is DriftStatus.IN_SYNC
    assert sorted(c.name for c in report.components) == ["app", "dns", "k8s", "net"]
    stored = store.get_component("dev", "k8s")
    assert stored is not None and stored.drift is DriftStatus.IN_SYNC
    assert stored.drift_checked_at == report.checked_at and stored.drift_summary == "in sync"


def test_a_drifted_component_is_reported_in_both_formats(
    applied: Workspace, store: StateStore
) -> None:
    tamper(applied, "k8s")
    report = drifting.check(applied, "dev")
    assert report.result is DriftStatus.DRIFTED and report.drifted() == ["k8s"]
    assert store.get_component("dev", "k8s").drift is DriftStatus.DRIFTED  # type: ignore[union-attr]
    data = json.loads(drift_reports.as_json([report]))
    assert data["result"] == "drifted" and data["revision"] == report.revision
    k8s = next(c for c in data["components"] if c["name"] == "k8s")
    assert k8s == {
        "name": "k8s",
        "drift": "drifted",
        "exit_code": 2,
        "summary": "k8s: node_count 3 -> 9",
    }
    markdown = drift_reports.as_markdown([report])
    assert "## Drift in `dev`: **drifted**" in markdown
    assert "| `k8s` | **drifted** | 2 |" in markdown and "k8s: node_count 3 -> 9" in markdown
    events = [e for e in store.list_events("dev") if e.kind == "drift.checked"]
    assert events[0].message == "drift check: 3 in_sync, 1 drifted"


def test_a_failing_or_timed_out_check_is_an_error_never_in_sync(
    world: World, applied: Workspace, store: StateStore
) -> None:
    (state_dir(applied, "net") / "broken").write_text("")
    report = drifting.check(applied, "dev")
    net = next(c for c in report.components if c.name == "net")
    assert (net.drift, net.exit_code, report.result) == (DriftStatus.ERROR, 1, DriftStatus.ERROR)
    assert net.summary.startswith("exited with code 1") and "hunter22" not in net.summary
    assert "token=***" in net.summary  # the driver's secret is redacted


def test_a_check_that_times_out_is_an_error(world: World, workspace: Workspace) -> None:
    world.commit(with_checks(timeout="1s", CHECK_SLEEP="5"))
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    report = drifting.check(workspace, "dev")
    assert {c.drift for c in report.components} == {DriftStatus.ERROR}
    assert all(c.summary.startswith("timed out after 1s") for c in report.components)


def test_remediation_reapplies_only_the_drifted_and_checks_again(
    world: World, applied: Workspace, store: StateStore
) -> None:
    tamper(applied, "dns")
    before = len(world.calls())
    report = drifting.check_and_remediate(applied, "dev", remediate=True, actor="gitopsd")
    assert report.remediation is not None and report.remediation.status is RunStatus.SUCCEEDED
    assert report.remediation.trigger == "remediation"
    assert [c.name for c in report.repaired] == ["dns"]
    assert world.calls()[before:] == ["dns"]  # nothing else was re-applied
    assert report.result is DriftStatus.IN_SYNC  # the check after the repair
    assert store.get_component("dev", "dns").drift is DriftStatus.IN_SYNC  # type: ignore[union-attr]
    markdown = drift_reports.as_markdown([report])
    assert "Drifted and re-applied: `dns`" in markdown
    assert "<code>dns</code>: what the check said before" in markdown
    assert "dns: node_count 3 -> 9" in markdown
    remediation = json.loads(drift_reports.as_json([report]))["remediation"]
    assert remediation == {
        "run": report.remediation.id,
        "status": "succeeded",
        "components": ["dns"],
    }


def test_a_remediation_never_takes_back_what_was_applied_since_its_check(
    world: World, applied: Workspace, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check lets the lease go before the remediation takes it: another process that
    applies the new head in between must not see the drifted component taken back to the
    revision the check saw."""
    tamper(applied, "k8s")
    second = world.commit(with_checks(LABEL="two"))  # every component changes
    remediating = applied.apply

    def another_process_first(environment: str, **asked: Any) -> Any:
        monkeypatch.setattr(applied, "apply", remediating)
        assert remediating(environment).revision == second  # the head, meanwhile
        return remediating(environment, **asked)

    monkeypatch.setattr(applied, "apply", another_process_first)
    report = drifting.check_and_remediate(applied, "dev", remediate=True)
    assert report.remediation is None
    k8s = store.get_component("dev", "k8s")
    assert k8s is not None and k8s.revision == second
    held = [e.message for e in store.list_events("dev") if e.kind == "drift.remediation_held"]
    assert held and "since the drift check: not remediated" in held[0]


def test_without_remediation_drift_is_only_reported(world: World, applied: Workspace) -> None:
    tamper(applied, "dns")
    before = len(world.calls())
    report = drifting.check_and_remediate(applied, "dev", remediate=False)
    assert report.result is DriftStatus.DRIFTED and report.remediation is None
    assert len(world.calls()) == before


def test_drift_found_and_repaired_still_counts_as_drift(world: World, applied: Workspace) -> None:
    tamper(applied, "dns")
    reports = drifting.check_environments(applied, ["dev"], remediate=True, actor="local")
    assert [r.result for r in reports] == [DriftStatus.IN_SYNC]  # checked again after repair
    assert drifting.outcome(reports) is DriftStatus.DRIFTED
    again = drifting.check_environments(applied, None, remediate=False, actor="local")
    assert [r.environment for r in again] == ["dev"]  # None: every environment at the head
    assert drifting.outcome(again) is DriftStatus.IN_SYNC


def test_an_environment_whose_manifest_says_remediate_is_repaired_unasked(
    world: World, workspace: Workspace
) -> None:
    dev = environment("dev", variables={"size": 3}, drift={"remediate": True})
    world.commit({**with_checks(), "environments/dev.yaml": dev})
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    tamper(workspace, "dns")
    report = drifting.check_now(
        workspace, "dev", repository=workspace.load_revision().repository, actor="gitopsd"
    )
    assert report.remediation is not None and [c.name for c in report.repaired] == ["dns"]


def test_a_suspended_environment_is_repaired_only_when_a_person_asks(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """A remediation only the manifest asks for is automatic work, held by suspension (a
    `gitopsd drift` a CI job runs on a schedule looks like any command); `--remediate`, a
    person asking, still runs."""
    dev = environment("dev", variables={"size": 3}, drift={"remediate": True})
    world.commit({**with_checks(), "environments/dev.yaml": dev})
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    suspending.suspend(workspace, "dev", reason="incident", actor="alice")
    tamper(workspace, "dns")

    held = drifting.check_environments(workspace, ["dev"], remediate=False, actor="ci")
    assert [r.remediation for r in held] == [None]
    kinds = [e.kind for e in store.list_events("dev")]
    assert "drift.remediation_held" in kinds
    asked = drifting.check_environments(workspace, ["dev"], remediate=True, actor="bob")
    assert asked[0].remediation is not None and [c.name for c in asked[0].repaired] == ["dns"]


def test_a_failed_check_makes_the_outcome_an_error(applied: Workspace) -> None:
    (state_dir(applied, "net") / "broken").write_text("")
    reports = drifting.check_environments(applied, ["dev"], remediate=False, actor="local")
    assert drifting.outcome(reports) is DriftStatus.ERROR


def test_an_environment_never_applied_has_nothing_to_check(workspace: Workspace) -> None:
    report = drifting.check(workspace, "dev")
    assert (report.revision, report.components, report.result) == (None, [], DriftStatus.IN_SYNC)


def test_a_check_never_runs_while_another_process_runs_the_environment(
    world: World, applied: Workspace, store: StateStore
) -> None:
    world.control(sleep={"net:apply": 1.5})
    newer = world.commit({**with_checks(), "components/net/extra.txt": "changed"})
    running = threading.Thread(target=applied.apply, args=("dev",))
    running.start()
    other = world.workspace(store)  # another holder of the lease, as another process is
    try:
        time.sleep(0.5)
        with pytest.raises(BusyError, match="is busy"):
            drifting.check(other, "dev")
    finally:
        running.join()
        other.source.close()
    after = drifting.check(applied, "dev")
    assert (after.revision, after.result) == (newer, DriftStatus.IN_SYNC)  # what the run left
