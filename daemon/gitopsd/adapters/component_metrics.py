"""The per-component metrics of SPEC section 7, kept in a few bytes per series.

Pipeline: run -> **report**. `gitopsd_component_runs_total` and
`gitopsd_component_duration_seconds` have a series per environment, component and action
(and result): 3,000 series at 1,000 components in three environments, 30,000 at 10,000.
prometheus_client keeps each labelled child as objects of its own, a lock and a value object
per bucket, which at these counts is a large share of an idle daemon's memory
(benchmarks/README.md). Here a series is one array of floats under one lock for all, and the
library's metric families write them out at scrape time, in the same text as its own
counters and histograms (`_created` included).
"""

from __future__ import annotations

import bisect
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

RunLabels = tuple[str, str, str, str]  # environment, component, action, result
DurationLabels = tuple[str, str, str]  # environment, component, action
RUN_LABELS = ("environment", "component", "action", "result")
DURATION_LABELS = ("environment", "component", "action")
VALUE, CREATED = 0, 1  # a counter series: [value, created]


class ComponentMetrics(Collector):
    """Counts and durations of driver steps by component; `count` and `observe` record,
    a registry's scrape calls `collect`."""

    def __init__(self, buckets: Sequence[float], *, now: Callable[[], float] = time.time) -> None:
        self._bounds = tuple(float(b) for b in buckets)
        self._now = now
        self._lock = threading.Lock()
        self._runs: dict[RunLabels, array[float]] = {}
        # a histogram series: a count per bucket (+Inf last, not cumulative), sum, created
        self._durations: dict[DurationLabels, array[float]] = {}

    def count(self, labels: RunLabels) -> None:
        with self._lock:
            series = self._runs.get(labels)
            if series is None:
                series = self._runs[labels] = array("d", (0.0, self._now()))
            series[VALUE] += 1

    def observe(self, labels: DurationLabels, seconds: float) -> None:
        width = len(self._bounds) + 1
        with self._lock:
            series = self._durations.get(labels)
            if series is None:
                series = array("d", [0.0] * (width + 2))
                series[width + 1] = self._now()
                self._durations[labels] = series
            series[bisect.bisect_left(self._bounds, seconds)] += 1
            series[width] += seconds

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        runs, durations = self._families()
        with self._lock:
            counted = [(labels, series.tolist()) for labels, series in self._runs.items()]
            observed = [(labels, series.tolist()) for labels, series in self._durations.items()]
        for run_labels, (value, created) in counted:
            runs.add_metric(run_labels, value, created=created)
        for duration_labels, values in observed:
            self._add_histogram(durations, duration_labels, values)
        yield from (runs, durations)

    def _add_histogram(
        self, family: HistogramMetricFamily, labels: DurationLabels, values: list[float]
    ) -> None:
        width = len(self._bounds) + 1
        bounds = [*map(floatToGoString, self._bounds), "+Inf"]
        cumulative, buckets = 0.0, []
        for bound, count in zip(bounds, values[:width], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric(labels, buckets, values[width])
        family.add_sample(
            family.name + "_created", dict(zip(DURATION_LABELS, labels, strict=True)), values[-1]
        )

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        runs = CounterMetricFamily(
            "gitopsd_component_runs_total", "Driver steps of runs, by result.", labels=RUN_LABELS
        )
        durations = HistogramMetricFamily(
            "gitopsd_component_duration_seconds",
            "Driver step durations, retries included.",
            labels=DURATION_LABELS,
        )
        return runs, durations
