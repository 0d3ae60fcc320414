"""Change windows (SPEC 2.2): may a revision move into an environment now, and if not, when?

Pipeline: promote -> **windows** -> apply. Like Argo CD's sync windows, each window starts on
a cron schedule read in its own timezone and lasts `duration`:
- a `deny` window in force blocks;
- when any `allow` window exists, a moment outside all of them blocks too.
The duration is counted on the timezone's clock, so "Friday 18:00 for 62h" ends on Monday at
08:00 local time whether or not summer time began or ended over that weekend. A blocked
verdict says when to look again (the deny window's end, or the next allow window's start),
so the daemon can sleep until then instead of polling.

Pure: the moment comes in as an argument (timezone-aware), nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from gitopsd.model.manifests import Window


@dataclass(frozen=True)
class WindowVerdict:
    """Whether the windows block at a moment, why, and when that changes next (UTC)."""

    blocked: bool
    reason: str
    until: datetime | None = None


def verdict(windows: Sequence[Window], moment: datetime) -> WindowVerdict:
    """The windows' verdict at `moment` (timezone-aware)."""
    denying = [(w, span) for w in windows if w.kind == "deny" if (span := covering(w, moment))]
    if denying:
        window, (_, end) = max(denying, key=lambda found: found[1][1])
        return WindowVerdict(
            True, f"deny window {describe(window)} until {_utc(end):%Y-%m-%d %H:%M}Z", _utc(end)
        )
    allows = [w for w in windows if w.kind == "allow"]
    if not allows or any(covering(w, moment) for w in allows):
        return WindowVerdict(False, "no window blocks")
    opening = min(next_start(w, moment) for w in allows)
    return WindowVerdict(
        True, f"outside every allow window until {opening:%Y-%m-%d %H:%M}Z", opening
    )


def covering(window: Window, moment: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence of `window` in force at `moment`, as (start, end), or None.

    Only the latest start at or before `moment` can cover it: every occurrence lasts the
    same, so an earlier one ends earlier.
    """
    zone = ZoneInfo(window.timezone)
    local = moment.astimezone(zone)
    start = _fire(window.schedule, local + timedelta(microseconds=1), forward=False, zone=zone)
    end = _wall_clock_end(start, window.duration, zone)
    return (start, end) if start <= local < end else None


def next_start(window: Window, moment: datetime) -> datetime:
    """The first start of `window` after `moment`, in UTC."""
    zone = ZoneInfo(window.timezone)
    return _utc(_fire(window.schedule, moment.astimezone(zone), forward=True, zone=zone))


def describe(window: Window) -> str:
    return f"'{window.schedule}' ({window.timezone}, {_hours(window.duration)})"


def _fire(schedule: str, local: datetime, *, forward: bool, zone: ZoneInfo) -> datetime:
    # croniter walks the zone's wall clock, summer time included, and answers in that zone
    walker = croniter(schedule, local)
    found: datetime = walker.get_next(datetime) if forward else walker.get_prev(datetime)
    return found.astimezone(zone)


def _wall_clock_end(start: datetime, seconds: float, zone: ZoneInfo) -> datetime:
    """`start` plus `seconds` counted on the zone's wall clock (a 62h window from Friday
    18:00 ends Monday 08:00 local time, however many real hours that is)."""
    naive = start.replace(tzinfo=None) + timedelta(seconds=seconds)
    return naive.replace(tzinfo=zone)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _hours(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if rest else f"{hours}h"
