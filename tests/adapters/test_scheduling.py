"""Timed jobs: APScheduler's triggers on an injected clock, and its real background thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from gitopsd.adapters.scheduling import BackgroundJobs, ManualJobs


class FakeTime:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_an_interval_job_fires_once_per_interval_on_the_injected_clock() -> None:
    clock = FakeTime()
    jobs = ManualJobs(clock)
    fired: list[datetime] = []
    jobs.every("poll", 30, lambda: fired.append(clock()))
    assert jobs.run_due() == 0
    clock.advance(29)
    assert jobs.run_due() == 0
    clock.advance(1)
    assert jobs.run_due() == 1
    clock.advance(30)
    jobs.run_due()
    assert len(fired) == 2


def test_missed_intervals_coalesce_into_one_firing() -> None:
    clock = FakeTime()
    jobs = ManualJobs(clock)
    fired: list[int] = []
    jobs.every("poll", 10, lambda: fired.append(1))
    clock.advance(95)
    assert jobs.run_due() == 1
    clock.advance(5)
    assert jobs.run_due() == 1  # the next one is at 100 s, not at 20 s
    assert len(fired) == 2


def test_a_failing_job_is_logged_and_keeps_its_schedule() -> None:
    clock = FakeTime()
    jobs = ManualJobs(clock)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("remote down")

    jobs.every("poll", 1, broken)
    for _ in range(3):
        clock.advance(1)
        jobs.run_due()
    assert len(calls) == 3


def test_the_background_scheduler_fires_in_real_time() -> None:
    jobs = BackgroundJobs()
    fired = threading.Event()
    jobs.every("poll", 0.05, fired.set)
    jobs.start()
    try:
        assert fired.wait(5)
    finally:
        jobs.shutdown()


def test_a_one_off_job_fires_once_at_its_time_and_a_new_one_replaces_it() -> None:
    clock = FakeTime()
    jobs = ManualJobs(clock)
    fired: list[str] = []
    jobs.at("later", clock() + timedelta(seconds=60), lambda: fired.append("first"))
    jobs.at("later", clock() + timedelta(seconds=30), lambda: fired.append("second"))
    clock.advance(30)
    assert jobs.run_due() == 1
    clock.advance(60)
    assert jobs.run_due() == 0
    assert fired == ["second"]


def test_the_background_scheduler_fires_a_one_off_job() -> None:
    jobs = BackgroundJobs()
    fired = threading.Event()
    jobs.at("once", datetime.now(UTC) + timedelta(seconds=0.05), fired.set)
    jobs.start()
    try:
        assert fired.wait(5)
    finally:
        jobs.shutdown()
