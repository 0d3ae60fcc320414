"""Change windows: deny blocks, allow-only blocks outside, local times kept across DST."""

from __future__ import annotations

from datetime import UTC, datetime

from gitopsd.engine.windows import covering, verdict
from gitopsd.model.manifests import Window

WEEKEND_FREEZE = Window(
    kind="deny", schedule="0 18 * * 5", duration=62 * 3600, timezone="Europe/Berlin"
)
OFFICE_HOURS = Window(kind="allow", schedule="0 9 * * 1-5", duration=8 * 3600, timezone="UTC")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_deny_window_blocks_from_its_start_to_its_end_in_local_time() -> None:
    # 2026-11-27 is a Friday; Berlin is UTC+1 in winter
    assert not verdict([WEEKEND_FREEZE], utc("2026-11-27T16:59:59")).blocked
    friday = verdict([WEEKEND_FREEZE], utc("2026-11-27T17:00:00"))  # 18:00 in Berlin
    assert friday.blocked and friday.until == utc("2026-11-30T07:00:00")  # Monday 08:00 local
    assert "deny window '0 18 * * 5' (Europe/Berlin, 62h)" in friday.reason
    assert verdict([WEEKEND_FREEZE], utc("2026-11-30T06:59:59")).blocked
    assert not verdict([WEEKEND_FREEZE], utc("2026-11-30T07:00:00")).blocked


def test_the_weekend_freeze_keeps_its_local_hours_when_summer_time_begins() -> None:
    # clocks go forward on Sunday 2026-03-29:
    # Friday 18:00 CET is 17:00Z, Monday 08:00 CEST is 06:00Z
    assert verdict([WEEKEND_FREEZE], utc("2026-03-27T17:00:00")).blocked
    sunday = verdict([WEEKEND_FREEZE], utc("2026-03-29T12:00:00"))
    assert sunday.blocked and sunday.until == utc("2026-03-30T06:00:00")
    assert not verdict([WEEKEND_FREEZE], utc("2026-03-30T06:00:00")).blocked


def test_the_weekend_freeze_keeps_its_local_hours_when_summer_time_ends() -> None:
    # clocks go back on Sunday 2026-10-25:
    # Friday 18:00 CEST is 16:00Z, Monday 08:00 CET is 07:00Z
    assert not verdict([WEEKEND_FREEZE], utc("2026-10-23T15:59:00")).blocked
    saturday = verdict([WEEKEND_FREEZE], utc("2026-10-24T10:00:00"))
    assert saturday.blocked and saturday.until == utc("2026-10-26T07:00:00")
    assert verdict([WEEKEND_FREEZE], utc("2026-10-26T06:30:00")).blocked
    assert not verdict([WEEKEND_FREEZE], utc("2026-10-26T07:00:00")).blocked


def test_with_allow_windows_only_their_hours_are_open() -> None:
    tuesday = verdict([OFFICE_HOURS], utc("2026-12-01T10:00:00"))
    assert not tuesday.blocked
    evening = verdict([OFFICE_HOURS], utc("2026-12-01T17:00:00"))  # the 8h ended at 17:00
    assert evening.blocked and evening.until == utc("2026-12-02T09:00:00")
    saturday = verdict([OFFICE_HOURS], utc("2026-12-05T12:00:00"))
    assert saturday.blocked and saturday.until == utc("2026-12-07T09:00:00")
    assert "outside every allow window" in saturday.reason


def test_a_deny_window_wins_over_an_allow_window() -> None:
    friday_evening_deploys = Window(kind="allow", schedule="0 0 * * *", duration=24 * 3600)
    found = verdict([friday_evening_deploys, WEEKEND_FREEZE], utc("2026-11-28T12:00:00"))
    assert found.blocked and found.reason.startswith("deny window")


def test_no_windows_never_block() -> None:
    assert verdict([], utc("2026-11-28T12:00:00")).blocked is False


def test_a_window_starting_at_this_very_moment_is_in_force() -> None:
    span = covering(OFFICE_HOURS, utc("2026-12-01T09:00:00"))
    assert span is not None and span[0] == utc("2026-12-01T09:00:00")
