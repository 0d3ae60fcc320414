"""Prometheus metrics of SPEC section 7, on a registry of the daemon's own.

Pipeline: run -> **report**. Counters and histograms are recorded as things happen (a run
finished, a fetch tried); the state gauges (`gitopsd_environment_info`,
`gitopsd_component_status`) are read from the state store at scrape time by a collector, so
they are true even for runs a `gitopsd apply` on the command line made, and a revision that
is no longer current leaves no stale series behind. Label values are bounded: environment,
component, action, result, status; a revision appears only in `gitopsd_environment_info`.
Leadership (`gitopsd_leader`, `gitopsd_leader_epoch`) is read at scrape time too, from the
lead `runtime.service.leadership` points it at (`follow_lead`): every daemon sharing a store, leader
or standby, says whether it leads. `Metrics` implements the runtime's recorder port
(`engine.recording.Recorder`), so the runtime says what happened in plain verbs and never sees
a label. The per-component series are kept compactly by `component_metrics`; these two are the
only modules that import prometheus_client (an import-linter contract keeps runtime off it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from gitopsd import __version__
from gitopsd.adapters.component_metrics import ComponentMetrics
from gitopsd.engine.recording import Lead, Snapshot
from gitopsd.model.state import (
    ComponentStatus,
    DriftStatus,
    Run,
    RunStatus,
    Step,
    StepAction,
    StepStatus,
)

# Infrastructure takes seconds to an hour: a component apply of a few seconds and a cluster
# creation of twenty minutes must both land in a bucket that means something.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUN_RESULTS = {
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "failure",
    RunStatus.CANCELLED: "cancelled",
}
STEP_RESULTS = {
    StepStatus.SUCCEEDED: "success",
    StepStatus.FAILED: "failure",
    StepStatus.CANCELLED: "cancelled",
    StepStatus.SKIPPED: "skipped",
}

__all__ = ["DURATION_BUCKETS", "Lead", "Metrics", "Snapshot", "recorder", "sole_lead"]
DELIVERY_RESULTS = ("success", "failure")
BOUNDS = ("le", "quantile")  # a histogram's bucket bound is part of its type, not a label


def sole_lead() -> int | None:
    """A daemon on a store of its own leads it, at epoch 0
    (runtime.service.leadership.SoleElection)."""
    return 0


class Metrics:
    """Every metric the daemon exports; `snapshot` yields the store's current states."""

    def __init__(
        self, *, version: str, snapshot: Snapshot, ready: Callable[[], bool] = lambda: True
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        build = Gauge("gitopsd_build_info", "gitopsd version.", ["version"], registry=self.registry)
        build.labels(version).set(1)
        self.runs = Counter(
            "gitopsd_runs_total",
            "Finished runs.",
            ["environment", "action", "result"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "gitopsd_run_duration_seconds",
            "Run durations, start to finish.",
            ["environment", "action"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.components = ComponentMetrics(DURATION_BUCKETS)
        self.registry.register(self.components)
        self.commit_to_apply = Histogram(
            "gitopsd_commit_to_apply_seconds",
            "From the daemon first seeing a commit to starting its apply.",
            ["environment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.gate_runs = Counter(
            "gitopsd_gate_runs_total",
            "Gate runs after applies, by result.",
            ["environment", "gate", "result"],
            registry=self.registry,
        )
        self.promotions = Counter(
            "gitopsd_promotions_total",
            "Promotions, by result: promoted, failed, superseded (a pending approval replaced).",
            ["environment", "result"],
            registry=self.registry,
        )
        self.untrusted = Counter(
            "gitopsd_untrusted_revisions_total",
            "Revisions blocked from an environment that requires signed commits: unsigned, or"
            " not signed by a signer of the trust file (once per revision).",
            ["environment"],
            registry=self.registry,
        )
        self.drift_checks = Counter(
            "gitopsd_drift_checks_total",
            "Drift checks of an environment, by result (drifted if any component drifted); a"
            " remediation counts two: the check that found the drift and the one after it.",
            ["environment", "result"],
            registry=self.registry,
        )
        self.fetches = Counter(
            "gitopsd_git_fetches_total",
            "Fetches of a remote repository.",
            ["result"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "gitopsd_notifications_total",
            "Notification deliveries, by result: success, failure (gave up after its retries).",
            ["notification", "result"],
            registry=self.registry,
        )
        self.commit_statuses = Counter(
            "gitopsd_commit_statuses_total",
            "Commit statuses set on GitHub, by result: success, failure.",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(snapshot))
        self.lead: Lead = (
            sole_lead  # runtime.service.leadership.Terms points it at its current term
        )
        self.registry.register(_LeadCollector(lambda: self.lead()))
        readiness = Gauge(
            "gitopsd_ready",
            "1 while /readyz answers 200 (manifests loaded, state store answering), else 0.",
            registry=self.registry,
        )
        readiness.set_function(lambda: 1.0 if ready() else 0.0)

    def run_finished(self, run: Run, steps: Iterable[Step]) -> None:
        """Count a finished run and its driver steps."""
        result = RUN_RESULTS.get(run.status)
        if result is None:
            return
        self.runs.labels(run.environment, run.action.value, result).inc()
        if run.started_at and run.finished_at:
            seconds = (run.finished_at - run.started_at).total_seconds()
            self.run_duration.labels(run.environment, run.action.value).observe(seconds)
        for step in steps:
            self._step_finished(run.environment, step)

    def _step_finished(self, environment: str, step: Step) -> None:
        result = STEP_RESULTS.get(step.status)
        if result is None:
            return
        if step.action is StepAction.GATE:
            self.gate_runs.labels(environment, step.component, result).inc()
            return
        action = step.action.value
        self.components.count(environment, step.component, action, result)
        if step.started_at and step.finished_at and step.status is not StepStatus.SKIPPED:
            seconds = (step.finished_at - step.started_at).total_seconds()
            self.components.observe(environment, step.component, action, seconds)

    def commit_reached_apply(self, environment: str, seconds: float) -> None:
        self.commit_to_apply.labels(environment).observe(seconds)

    def promotion_ended(self, environment: str, result: str) -> None:
        self.promotions.labels(environment, result).inc()

    def revision_untrusted(self, environment: str) -> None:
        self.untrusted.labels(environment).inc()

    def drift_checked(self, environment: str, result: str) -> None:
        self.drift_checks.labels(environment, result).inc()

    def fetched(self, result: str) -> None:
        self.fetches.labels(result).inc()

    def notification_sent(self, notification: str, result: str) -> None:
        self.notifications.labels(notification, result).inc()

    def commit_status_set(self, result: str) -> None:
        self.commit_statuses.labels(result).inc()

    def follow_lead(self, lead: Lead) -> None:
        self.lead = lead

    def expect_deliveries(self, notifications: Iterable[str], *, commit_statuses: bool) -> None:
        """Start the delivery counters at 0 for every label set the daemon may count: a
        counter series born at 1 hides its first failure from `increase()` (and the alerts)."""
        for name in notifications:
            for result in DELIVERY_RESULTS:
                self.notifications.labels(name, result)
        if commit_statuses:
            for result in DELIVERY_RESULTS:
                self.commit_statuses.labels(result)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def families(self) -> list[Family]:
        """Each metric of the registry, with the labels its series carry now: what the
        reference (docs/reference/metrics.md) lists, after one of everything was counted."""
        found = []
        for family in self.registry.collect():
            labels: dict[str, None] = {}
            for sample in family.samples:
                labels |= dict.fromkeys(name for name in sample.labels if name not in BOUNDS)
            name = family.name + ("_total" if family.type == "counter" else "")
            found.append(Family(name, family.type, family.documentation, tuple(labels)))
        return found


@dataclass(frozen=True)
class Family:
    """One metric as a reader sees it: its full name, type, help and labels."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...]


def recorder(*, snapshot: Snapshot, ready: Callable[[], bool]) -> Metrics:
    """A daemon's recorder (`engine.recording.MakeRecorder`), labelled with this version."""
    return Metrics(version=__version__, snapshot=snapshot, ready=ready)


class _LeadCollector(Collector):
    """`gitopsd_leader` and `gitopsd_leader_epoch`, from one read of `lead` so they agree."""

    def __init__(self, lead: Lead) -> None:
        self._lead = lead

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families(None))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families(self._lead()))

    @staticmethod
    def _families(epoch: int | None) -> tuple[GaugeMetricFamily, ...]:
        leader = GaugeMetricFamily(
            "gitopsd_leader",
            "1 while this process leads its state store (runs work), 0 while it stands by.",
            value=0 if epoch is None else 1,
        )
        leader_epoch = GaugeMetricFamily(
            "gitopsd_leader_epoch",
            "The epoch this process leads at (0 on a store of its own, and while standing by).",
            value=epoch or 0,
        )
        return leader, leader_epoch


class _StateCollector(Collector):
    """The state gauges, read at scrape time: environment info, component status, pending
    approvals, drifted components and the last drift check."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info, status, pending, drifted, last_check = self._families()
        for environment, components in self._snapshot():
            revision = environment.revision or ""
            info.add_metric([environment.name, revision, environment.shown_status.value], 1)
            waiting = environment.pending_approval is not None
            pending.add_metric([environment.name], 1 if waiting else 0)
            count = sum(1 for c in components if c.drift is DriftStatus.DRIFTED)
            drifted.add_metric([environment.name], count)
            checked = [c.drift_checked_at for c in components if c.drift_checked_at]
            if checked:
                last_check.add_metric([environment.name], max(checked).timestamp())
            for component in components:
                for candidate in ComponentStatus:
                    current = 1 if candidate is component.status else 0
                    labels = [environment.name, component.name, candidate.value]
                    status.add_metric(labels, current)
        yield from (info, status, pending, drifted, last_check)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        info = GaugeMetricFamily(
            "gitopsd_environment_info",
            "The environment's current revision and status (always 1).",
            labels=["environment", "revision", "status"],
        )
        status = GaugeMetricFamily(
            "gitopsd_component_status",
            "1 on the component's current status, 0 on the others.",
            labels=["environment", "component", "status"],
        )
        pending = GaugeMetricFamily(
            "gitopsd_pending_approvals",
            "Revisions waiting for approvals to enter the environment (0 or 1).",
            labels=["environment"],
        )
        drifted = GaugeMetricFamily(
            "gitopsd_drifted_components",
            "Components whose last drift check found drift.",
            labels=["environment"],
        )
        last_check = GaugeMetricFamily(
            "gitopsd_last_drift_check_timestamp_seconds",
            "When the environment's last drift check ran (Unix time).",
            labels=["environment"],
        )
        return info, status, pending, drifted, last_check
