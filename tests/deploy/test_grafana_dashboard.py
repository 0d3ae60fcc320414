"""deploy/grafana/gitopsd-dashboard.json: importable, per-environment, only real metric names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "gitopsd-dashboard.json"
METRICS_SOURCES = [
    ROOT / "daemon" / "gitopsd" / "adapters" / name
    for name in ("metrics.py", "component_metrics.py")
]

BASE_METRICS = {
    "gitopsd_build_info",
    "gitopsd_runs_total",
    "gitopsd_run_duration_seconds",
    "gitopsd_component_runs_total",
    "gitopsd_component_duration_seconds",
    "gitopsd_component_status",
    "gitopsd_environment_info",
    "gitopsd_promotions_total",
    "gitopsd_untrusted_revisions_total",
    "gitopsd_pending_approvals",
    "gitopsd_gate_runs_total",
    "gitopsd_drift_checks_total",
    "gitopsd_drifted_components",
    "gitopsd_last_drift_check_timestamp_seconds",
    "gitopsd_commit_to_apply_seconds",
    "gitopsd_git_fetches_total",
    "gitopsd_leader",
    "gitopsd_leader_epoch",
    "gitopsd_notifications_total",
    "gitopsd_commit_statuses_total",
}
HISTOGRAMS = {
    "gitopsd_run_duration_seconds",
    "gitopsd_component_duration_seconds",
    "gitopsd_commit_to_apply_seconds",
}
KNOWN_METRICS = BASE_METRICS | {
    f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")
}

METRIC_NAME = re.compile(r"gitopsd_[a-z_]+")


def metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [node["expr"] for node in walk(dashboard) if isinstance(node.get("expr"), str)]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_extractor_finds_names_and_catches_misspellings() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(gitopsd_run_duration_seconds_bucket{environment="$environment"}[1h])))'
        " / gitopsd_run_total"
    )
    assert metric_names(expr) == {"gitopsd_run_duration_seconds_bucket", "gitopsd_run_total"}
    assert metric_names(expr) - KNOWN_METRICS == {"gitopsd_run_total"}
    assert exprs({"panels": [{"targets": [{"expr": "a"}, {"expr": "b"}]}]}) == ["a", "b"]


def test_known_metrics_are_the_daemons() -> None:
    source = "".join(path.read_text(encoding="utf-8") for path in METRICS_SOURCES)
    missing = sorted(name for name in BASE_METRICS if f'"{name}"' not in source)
    assert not missing, f"not defined in {[path.name for path in METRICS_SOURCES]}: {missing}"


def test_importable_with_a_prometheus_input(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    assert dashboard["title"] and dashboard["uid"]
    inputs = {i["name"]: i for i in dashboard["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    for node in walk(dashboard["panels"]):
        if "datasource" in node and isinstance(node["datasource"], dict):
            assert node["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_environment_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    env = variables["environment"]
    assert env["type"] == "query"
    assert env["definition"] == "label_values(gitopsd_environment_info, environment)"
    assert env["query"]["query"] == env["definition"]
    assert env["multi"] or env["includeAll"]  # a repeat needs several values to repeat over


def test_rows_repeat_per_environment(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    rows = [p for p in panels if p["type"] == "row"]
    assert any(r.get("repeat") == "environment" for r in rows)
    # Every panel about one environment sits under a row repeated per environment.
    current_row: dict[str, Any] | None = None
    for panel in panels:
        if panel["type"] == "row":
            current_row = panel
            continue
        uses_env = any("$environment" in e for e in exprs(panel))
        if uses_env:
            assert current_row is not None and current_row.get("repeat") == "environment", panel[
                "title"
            ]
            assert all('environment="$environment"' in e for e in exprs(panel)), panel["title"]


def test_every_expr_uses_only_known_metrics(dashboard: dict[str, Any]) -> None:
    found = exprs(dashboard)
    found += [v["definition"] for v in dashboard["templating"]["list"]]
    assert len(found) >= 10
    used: set[str] = set()
    for expr in found:
        names = metric_names(expr)
        assert names, f"no gitopsd metric in {expr!r}"
        unknown = names - KNOWN_METRICS
        assert not unknown, f"unknown metric(s) {sorted(unknown)} in {expr!r}"
        used |= names
    # The panels the dashboard promises.
    for name in (
        "gitopsd_environment_info",
        "gitopsd_runs_total",
        "gitopsd_run_duration_seconds_bucket",
        "gitopsd_component_duration_seconds_bucket",
        "gitopsd_drifted_components",
        "gitopsd_last_drift_check_timestamp_seconds",
        "gitopsd_pending_approvals",
        "gitopsd_commit_to_apply_seconds_bucket",
        "gitopsd_promotions_total",
        "gitopsd_gate_runs_total",
        "gitopsd_git_fetches_total",
        "gitopsd_leader",
        "gitopsd_notifications_total",
        "gitopsd_commit_statuses_total",
    ):
        assert name in used, name


def test_the_top_row_shows_the_leader_per_instance_and_deliveries_by_result(
    dashboard: dict[str, Any],
) -> None:
    panels = dashboard["panels"]
    first_repeated = next(i for i, p in enumerate(panels) if p.get("repeat") == "environment")
    top = {p["title"]: p for p in panels[:first_repeated]}
    leader = top["Leader per instance"]
    assert exprs(leader) == ["max by (instance) (gitopsd_leader)"]
    (mapping,) = leader["fieldConfig"]["defaults"]["mappings"]
    assert {k: v["text"] for k, v in mapping["options"].items()} == {"0": "standby", "1": "leader"}
    required = {r["id"] for r in dashboard["__requires"] if r["type"] == "panel"}
    assert {p["type"] for p in panels if p["type"] != "row"} <= required
    deliveries = " ".join(exprs(top["Notifications and commit statuses per hour by result"]))
    assert "by (notification, result)" in deliveries and "by (result)" in deliveries
