"""How long runs and steps took, as the runs pages show it: times to the second, durations
people read at a glance, and where each step sits on its run's timeline.

A run's times are ISO 8601 strings as the API gives them; one not set yet (a step that has
not started, a run still going) is None, and a thing still going lasts until `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

WIDTH = 1000  # the timeline's width in SVG units (the bars scale with the page)
MIN_BAR = 3  # a step that took no time still shows as a sliver


@dataclass(frozen=True)
class Bar:
    """A step's place on its run's timeline: where it starts and how wide it is."""

    x: int
    width: int


def moment(stamp: str | None) -> datetime | None:
    """An ISO 8601 time as an aware datetime (UTC when it names no zone); None if unset."""
    if not stamp:
        return None
    try:
        found = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def clock(stamp: str | None) -> str:
    """`2026-12-05 06:35:12 UTC`, or a dash for a time not set."""
    found = moment(stamp)
    return found.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if found else "—"


def span(start: str | None, end: str | None, now: datetime) -> str:
    """How long from `start` to `end` (to `now` while it goes): `850 ms`, `42 s`,
    `3 min 5 s`, `2 h 10 min`; a dash before it started."""
    began = moment(start)
    if began is None:
        return "—"
    seconds = max(0.0, ((moment(end) or now) - began).total_seconds())
    return length(seconds)


def length(seconds: float) -> str:
    """A duration in the two largest units that matter."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def bars(run: dict[str, Any], steps: list[dict[str, Any]], now: datetime) -> list[Bar | None]:
    """Each step's bar on one scale, from the run's start to its end (or `now` while it goes):
    a bar's width is proportional to the step's duration; None for a step that never started."""
    starts = [moment(s.get("started_at")) for s in steps]
    first = moment(run.get("started_at")) or min(filter(None, starts), default=None)
    if first is None:
        return [None for _ in steps]
    ends = [moment(s.get("finished_at")) for s in steps]
    last = moment(run.get("finished_at")) or now
    last = max([last, *filter(None, ends)])
    total = max((last - first).total_seconds(), 1e-3)
    return [_bar(start, end or last, first, total) for start, end in zip(starts, ends, strict=True)]


def _bar(start: datetime | None, end: datetime, first: datetime, total: float) -> Bar | None:
    if start is None:
        return None
    x = min(WIDTH - MIN_BAR, max(0, round((start - first).total_seconds() / total * WIDTH)))
    width = round(max(0.0, (end - start).total_seconds()) / total * WIDTH)
    return Bar(x, min(WIDTH - x, max(MIN_BAR, width)))
