"""The per-component metrics of SPEC section 7, kept in a few bytes per series.

Pipeline: run -> **report**. `gitopsd_component_runs_total` and
`gitopsd_component_duration_seconds` have a series per environment, component and action
(and result): 30,000 of each at 10,000 components in three environments. prometheus_client
keeps each labelled child as objects of its own, a lock and a value object per bucket; even
an array and a label tuple per series were a large share of an idle daemon's memory
(benchmarks/README.md). Here every component has one position, the same in every table, and
a table per environment and action (and result) holds all components' values in one array of
floats, a row per position; the labels are put together at scrape time only. The library's
metric families write the series out, in the same text as its own counters and histograms
(`_created` included).
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

RUN_LABELS = ("environment", "component", "action", "result")
DURATION_LABELS = ("environment", "component", "action")
VALUE, CREATED = 0, 1  # a counter's row: [value, created]


class _Table:
    """One series' row of floats for each component position, all in one array: `counts`
    counts first, created last. A row is zeros until its series is first recorded (a
    series always counts something), so positions never recorded here cost 8 bytes a
    field and are not written out."""

    def __init__(self, counts: int, width: int) -> None:
        self.counts = counts
        self.width = width
        self.values: array[float] = array("d")

    def row(self, position: int, now: Callable[[], float]) -> int:
        """The offset of `position`'s row, about to be recorded (created set the first time)."""
        start = position * self.width
        missing = start + self.width - len(self.values)
        if missing > 0:
            self.values.frombytes(bytes(8 * missing))  # 0.0 in every field
        if not any(self.values[start : start + self.counts]):
            self.values[start + self.width - 1] = now()
        return start

    def rows(self) -> Iterator[tuple[int, list[float]]]:
        """(position, values) of every series recorded, in position order."""
        values, width = self.values, self.width
        for start in range(0, len(values), width):
            if any(values[start : start + self.counts]):
                yield start // width, values[start : start + width].tolist()


class ComponentMetrics(Collector):
    """Counts and durations of driver steps by component; `count` and `observe` record,
    a registry's scrape calls `collect`."""

    def __init__(self, buckets: Sequence[float], *, now: Callable[[], float] = time.time) -> None:
        self._bounds = tuple(float(b) for b in buckets)
        self._now = now
        self._lock = threading.Lock()
        self._names: list[str] = []  # component by position
        self._positions: dict[str, int] = {}
        # a counter row: value, created
        self._runs: dict[tuple[str, str, str], _Table] = {}  # environment, action, result
        # a histogram row: a count per bucket (+Inf last, not cumulative), sum, created
        self._durations: dict[tuple[str, str], _Table] = {}  # environment, action

    def count(self, environment: str, component: str, action: str, result: str) -> None:
        with self._lock:
            table = self._runs.get((environment, action, result))
            if table is None:
                table = self._runs[environment, action, result] = _Table(1, 2)
            table.values[table.row(self._position(component), self._now) + VALUE] += 1

    def observe(self, environment: str, component: str, action: str, seconds: float) -> None:
        width = len(self._bounds) + 1
        with self._lock:
            table = self._durations.get((environment, action))
            if table is None:
                table = self._durations[environment, action] = _Table(width, width + 2)
            start = table.row(self._position(component), self._now)
            table.values[start + bisect.bisect_left(self._bounds, seconds)] += 1
            table.values[start + width] += seconds

    def _position(self, component: str) -> int:
        position = self._positions.get(component)
        if position is None:
            position = self._positions[component] = len(self._names)
            self._names.append(component)
        return position

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        runs, durations = self._families()
        with self._lock:
            names = list(self._names)
            counted = [(key, list(table.rows())) for key, table in self._runs.items()]
            observed = [(key, list(table.rows())) for key, table in self._durations.items()]
        for (environment, action, result), rows in counted:
            for position, (value, created) in rows:
                labels = (environment, names[position], action, result)
                runs.add_metric(labels, value, created=created)
        for (environment, action), rows in observed:
            for position, values in rows:
                self._add_histogram(durations, (environment, names[position], action), values)
        yield from (runs, durations)

    def _add_histogram(
        self, family: HistogramMetricFamily, labels: tuple[str, str, str], values: list[float]
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
