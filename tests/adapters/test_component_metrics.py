"""Per-component metrics: the text prometheus_client's own counters and histograms write,
in a memory that stays small with thousands of components."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gitopsd.adapters.metrics import DURATION_BUCKETS, Metrics
from gitopsd.model.state import Run, RunAction, RunStatus, Step, StepAction, StepStatus

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
Samples = set[tuple[str, str, tuple[tuple[str, str], ...], float | None]]


def record(metrics: Metrics, environment: str, steps: list[tuple[str, StepStatus, float]]) -> None:
    run = Run(
        id="r1", environment=environment, revision="abc", action=RunAction.APPLY,
        status=RunStatus.SUCCEEDED, created_at=T0, started_at=T0, finished_at=T0,
    )  # fmt: skip
    metrics.run_finished(run, [step(i, *done) for i, done in enumerate(steps)])


def step(index: int, component: str, status: StepStatus, seconds: float) -> Step:
    return Step(
        run_id="r1", index=index, component=component, action=StepAction.APPLY, status=status,
        revision="abc", started_at=T0, finished_at=T0 + timedelta(seconds=seconds),
    )  # fmt: skip


def component_samples(text: str) -> Samples:
    """The component families' samples; `_created` values left out (times of creation)."""
    return {
        (family.type, sample.name, tuple(sorted(sample.labels.items())), None)
        if sample.name.endswith("_created")
        else (family.type, sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(text)
        if family.name.startswith(("gitopsd_component_runs", "gitopsd_component_duration"))
        for sample in family.samples
    }


def test_the_text_is_what_the_library_writes_for_its_own_metrics() -> None:
    steps = [
        ("net", StepStatus.SUCCEEDED, 0.5),
        ("net", StepStatus.SUCCEEDED, 5),
        ("net", StepStatus.FAILED, 7200),
        ("net", StepStatus.FAILED, 9000),
        ("dns", StepStatus.SKIPPED, 0),
        ("dns", StepStatus.SUCCEEDED, 30.5),
    ]
    metrics = Metrics(version="1", snapshot=lambda: [])
    record(metrics, "dev", steps)
    record(metrics, "prod", steps[:2])

    registry = CollectorRegistry()
    runs = Counter(
        "gitopsd_component_runs_total", "Driver steps of runs, by result.",
        ["environment", "component", "action", "result"], registry=registry,
    )  # fmt: skip
    durations = Histogram(
        "gitopsd_component_duration_seconds", "Driver step durations, retries included.",
        ["environment", "component", "action"], buckets=DURATION_BUCKETS, registry=registry,
    )  # fmt: skip
    results = {StepStatus.SUCCEEDED: "success", StepStatus.FAILED: "failure"}
    for environment, done in (("dev", steps), ("prod", steps[:2])):
        for name, status, seconds in done:
            runs.labels(environment, name, "apply", results.get(status, "skipped")).inc()
            if status is not StepStatus.SKIPPED:
                durations.labels(environment, name, "apply").observe(seconds)

    expected = component_samples(generate_latest(registry).decode())
    assert component_samples(metrics.exposition()[0].decode()) == expected
    names = {name for _, name, _, _ in expected}
    assert {"gitopsd_component_runs_created", "gitopsd_component_duration_seconds_created"} <= names


def test_thousands_of_component_series_are_each_exposed() -> None:
    """1,000 components applied in three environments: 3,000 histogram series and as many
    counters (what they cost in memory is measured by benchmarks/memory.py, not here)."""
    metrics = Metrics(version="1", snapshot=lambda: [])
    steps = [(f"component-{i:04d}", StepStatus.SUCCEEDED, 3.0) for i in range(1000)]
    for environment in ("dev", "staging", "prod"):
        record(metrics, environment, steps)
    text = metrics.exposition()[0].decode()
    assert text.count("gitopsd_component_duration_seconds_count{") == 3000
