"""docs/reference/metrics.md: every metric of `/metrics`, read from the daemon's own registry.

The registry only shows a metric's labels on its series, so this builds the daemon's `Metrics`
on a one-environment example and counts one of everything through the calls the daemon makes;
the registry then says each metric's name, type, help and labels. A test holds the result to
what a running daemon's `/metrics` serves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gitopsd import __version__
from gitopsd.adapters.metrics import Family, Metrics
from gitopsd.model.state import (
    ComponentState,
    DriftStatus,
    EnvironmentState,
    Run,
    RunAction,
    RunStatus,
    Step,
    StepAction,
    StepStatus,
)
from gitopsd.reference import markdown

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
INTRO = (
    "Every metric `gitopsd serve` exposes at `GET /metrics` (Prometheus text format, no token "
    "needed). Counters and histograms count what this daemon did; the state gauges "
    "(`gitopsd_environment_info`, `gitopsd_component_status`, approvals and drift) are read "
    "from the state store at each scrape, so they include runs made by `gitopsd apply` on the "
    "command line. Every counter and histogram also has a `_created` series (when the series "
    "began, Unix time). [deploy/prometheus/](../../deploy/prometheus) holds alert rules on them."
)


def families() -> list[Family]:
    """Each metric of a daemon's registry, in the order the exposition lists them."""
    return _exercised().families()


def render() -> str:
    lines = markdown.header("Metrics reference", "daemon/gitopsd/reference/metrics.py", INTRO)
    rows = [
        (
            markdown.code(f.name),
            f.type,
            ", ".join(markdown.code(label) for label in f.labels),
            f.help,
        )
        for f in families()
    ]
    lines += markdown.table(("metric", "type", "labels", "meaning"), rows)
    return "\n".join(lines).rstrip("\n") + "\n"


def _exercised() -> Metrics:
    """A daemon's metrics after one of everything: so every metric has a series."""
    environment = EnvironmentState(name="prod", revision="abc", updated_at=EPOCH)
    component = ComponentState(
        environment="prod", name="net", revision="abc", fingerprint="f", updated_at=EPOCH,
        drift=DriftStatus.IN_SYNC, drift_checked_at=EPOCH,
    )  # fmt: skip
    metrics = Metrics(version=__version__, snapshot=lambda: [(environment, [component])])
    metrics.run_finished(_run(), [_step("net", StepAction.APPLY), _step("smoke", StepAction.GATE)])
    metrics.expect_deliveries(["team-chat"], commit_statuses=True)
    metrics.fetches.labels("success").inc()
    metrics.promotions.labels("prod", "promoted").inc()
    metrics.revision_untrusted("prod")
    metrics.drift_checks.labels("prod", "in_sync").inc()
    metrics.commit_to_apply.labels("prod").observe(1.0)
    return metrics


def _run() -> Run:
    return Run(
        id="r1", environment="prod", revision="abc", action=RunAction.APPLY,
        status=RunStatus.SUCCEEDED, created_at=EPOCH, started_at=EPOCH,
        finished_at=EPOCH + timedelta(seconds=1),
    )  # fmt: skip


def _step(component: str, action: StepAction) -> Step:
    return Step(
        run_id="r1", index=0, component=component, action=action, status=StepStatus.SUCCEEDED,
        revision="abc", started_at=EPOCH, finished_at=EPOCH + timedelta(seconds=1),
    )  # fmt: skip
