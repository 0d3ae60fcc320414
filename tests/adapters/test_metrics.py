"""The metrics adapter: SPEC section 7 names and labels, gates apart from components, state
gauges read at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gitopsd.adapters.metrics import Metrics
from gitopsd.model.state import (
    ComponentState,
    ComponentStatus,
    EnvironmentState,
    EnvironmentStatus,
    Run,
    RunAction,
    RunStatus,
    Step,
    StepAction,
    StepStatus,
)
from tests.daemon.harness import metric

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def step(component: str, action: StepAction, status: StepStatus, seconds: float) -> Step:
    return Step(
        run_id="r1", index=0, component=component, action=action, status=status, revision="abc",
        started_at=T0, finished_at=T0 + timedelta(seconds=seconds),
    )  # fmt: skip


def test_a_finished_run_counts_its_components_and_gates_apart() -> None:
    metrics = Metrics(version="9.9.9", snapshot=lambda: [])
    run = Run(
        id="r1", environment="dev", revision="abc", action=RunAction.APPLY,
        status=RunStatus.FAILED, created_at=T0, started_at=T0,
        finished_at=T0 + timedelta(seconds=42),
    )  # fmt: skip
    metrics.run_finished(
        run,
        [
            step("net", StepAction.APPLY, StepStatus.SUCCEEDED, 3),
            step("dns", StepAction.APPLY, StepStatus.SKIPPED, 0),
            step("smoke", StepAction.GATE, StepStatus.FAILED, 1),
        ],
    )
    text = metrics.exposition()[0].decode()
    assert metric(text, "gitopsd_build_info", version="9.9.9") == 1
    assert (
        metric(text, "gitopsd_runs_total", environment="dev", action="apply", result="failure") == 1
    )
    assert metric(text, "gitopsd_run_duration_seconds_sum", environment="dev", action="apply") == 42
    labels = {"environment": "dev", "action": "apply"}
    assert (
        metric(text, "gitopsd_component_runs_total", **labels, component="net", result="success")
        == 1
    )
    assert (
        metric(text, "gitopsd_component_runs_total", **labels, component="dns", result="skipped")
        == 1
    )
    assert (
        metric(text, "gitopsd_component_duration_seconds_count", **labels, component="dns") is None
    )
    assert (
        metric(text, "gitopsd_gate_runs_total", environment="dev", gate="smoke", result="failure")
        == 1
    )
    assert (
        metric(text, "gitopsd_component_runs_total", **labels, component="smoke", result="failure")
        is None
    )


def test_state_gauges_follow_the_store_and_drop_an_old_revision() -> None:
    states: list[tuple[EnvironmentState, list[ComponentState]]] = []
    metrics = Metrics(version="1", snapshot=lambda: states)

    def at(revision: str, status: ComponentStatus) -> None:
        environment = EnvironmentState(
            name="dev", revision=revision, status=EnvironmentStatus.VERIFIED, updated_at=T0
        )
        component = ComponentState(
            environment="dev",
            name="net",
            revision=revision,
            fingerprint="f",
            status=status,
            updated_at=T0,
        )
        states[:] = [(environment, [component])]

    at("aaa", ComponentStatus.APPLIED)
    first = metrics.exposition()[0].decode()
    assert (
        metric(
            first, "gitopsd_environment_info", environment="dev", revision="aaa", status="verified"
        )
        == 1
    )
    at("bbb", ComponentStatus.FAILED)
    second = metrics.exposition()[0].decode()
    assert (
        metric(
            second, "gitopsd_environment_info", environment="dev", revision="aaa", status="verified"
        )
        is None
    )
    assert (
        metric(
            second, "gitopsd_component_status", environment="dev", component="net", status="failed"
        )
        == 1
    )
    assert (
        metric(
            second, "gitopsd_component_status", environment="dev", component="net", status="applied"
        )
        == 0
    )


def test_each_recorder_verb_counts_under_the_documented_name_and_labels() -> None:
    metrics = Metrics(version="1", snapshot=lambda: [])
    metrics.commit_reached_apply("dev", 2.5)
    metrics.promotion_ended("prod", "superseded")
    metrics.drift_checked("dev", "drifted")
    metrics.fetched("failure")
    metrics.notification_sent("slack", "failure")
    metrics.commit_status_set("success")
    metrics.follow_lead(lambda: 7)
    text = metrics.exposition()[0].decode()
    assert metric(text, "gitopsd_commit_to_apply_seconds_sum", environment="dev") == 2.5
    assert metric(text, "gitopsd_promotions_total", environment="prod", result="superseded") == 1
    assert metric(text, "gitopsd_drift_checks_total", environment="dev", result="drifted") == 1
    assert metric(text, "gitopsd_git_fetches_total", result="failure") == 1
    assert metric(text, "gitopsd_notifications_total", notification="slack", result="failure") == 1
    assert metric(text, "gitopsd_commit_statuses_total", result="success") == 1
    assert metric(text, "gitopsd_leader") == 1 and metric(text, "gitopsd_leader_epoch") == 7
