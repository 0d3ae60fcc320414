"""How the runs pages place steps on a run's timeline and say how long things took."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gitopsd.dashboard.timing import WIDTH, Bar, bars, clock, length, span

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_each_bar_starts_where_its_step_started_and_is_as_long_as_it_took() -> None:
    run = {"started_at": at(0), "finished_at": at(100)}
    steps = [
        {"started_at": at(0), "finished_at": at(25)},
        {"started_at": at(25), "finished_at": at(100)},
        {"started_at": None, "finished_at": None},  # skipped: never started
    ]
    assert bars(run, steps, now=T0) == [Bar(0, WIDTH // 4), Bar(WIDTH // 4, WIDTH * 3 // 4), None]


def test_a_run_still_going_lasts_until_now_and_so_does_its_running_step() -> None:
    run = {"started_at": at(0), "finished_at": None}
    steps = [{"started_at": at(0), "finished_at": at(10)}, {"started_at": at(10)}]
    now = T0 + timedelta(seconds=40)
    assert bars(run, steps, now=now) == [Bar(0, WIDTH // 4), Bar(WIDTH // 4, WIDTH * 3 // 4)]


def test_a_step_that_took_no_time_still_shows_and_a_run_not_started_has_no_bars() -> None:
    run = {"started_at": at(0), "finished_at": at(1000)}
    (bar,) = bars(run, [{"started_at": at(1000), "finished_at": at(1000)}], now=T0)
    assert bar is not None and bar.width > 0 and bar.x + bar.width <= WIDTH
    assert bars({"started_at": None}, [{"started_at": None}], now=T0) == [None]


def test_durations_read_in_the_units_that_matter() -> None:
    assert [length(s) for s in (0.25, 3.14, 42, 185, 7800)] == [
        "250 ms",
        "3.1 s",
        "42 s",
        "3 min 5 s",
        "2 h 10 min",
    ]
    assert span(at(0), None, now=T0 + timedelta(seconds=5)) == "5.0 s"  # still going
    assert span(None, None, now=T0) == "—"
    assert clock(at(12)) == "2026-12-05 06:00:12 UTC" and clock(None) == "—"
