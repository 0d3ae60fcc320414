"""Timed work of the daemon (remote polls, promotion beats, a soak ending or a window opening;
drift checks later) on APScheduler 3.x.

Pipeline: scheduler -> queue -> worker. A job here never does the work itself: it puts a
request on a queue or asks for a fetch, so a slow run never delays the schedule and the
schedule never runs two things for one environment at once.

APScheduler 3.x is untyped and reads the system clock inside its scheduler loop, so it sits
behind this small typed facade with two implementations of one interface:
`BackgroundJobs` runs APScheduler's own `BackgroundScheduler` (production); `ManualJobs`
computes fire times with the very same APScheduler triggers but fires only when told the
time, so tests drive schedules with an injected clock instead of sleeping. This is the only
module that imports APScheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from croniter import croniter

log = logging.getLogger(__name__)

Job = Callable[[], None]


class Jobs(Protocol):
    def every(self, name: str, seconds: float, job: Job) -> None:
        """Run `job` every `seconds`, the first time one interval from now."""
        ...

    def at(self, name: str, when: datetime, job: Job) -> None:
        """Run `job` once at `when` (at once if that has passed); a job of the same name is
        replaced."""
        ...

    def cron(self, name: str, schedule: str, job: Job, *, timezone: str = "UTC") -> None:
        """Run `job` on a five-field crontab(5) schedule read in `timezone`."""
        ...

    def start(self) -> None: ...

    def shutdown(self) -> None: ...


class BackgroundJobs:
    """APScheduler's BackgroundScheduler: a thread of its own, real time."""

    def __init__(self) -> None:
        self._scheduler: Any = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def every(self, name: str, seconds: float, job: Job) -> None:
        self._scheduler.add_job(
            _logged(name, job), _interval(seconds), id=name, name=name, replace_existing=True
        )

    def at(self, name: str, when: datetime, job: Job) -> None:
        self._scheduler.add_job(
            _logged(name, job), _once(when), id=name, name=name, replace_existing=True
        )

    def cron(self, name: str, schedule: str, job: Job, *, timezone: str = "UTC") -> None:
        self._scheduler.add_job(
            _logged(name, job),
            CrontabTrigger(schedule, timezone),
            id=name,
            name=name,
            replace_existing=True,
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            # Removing the jobs first waits for the scheduler's loop to finish its round (both
            # hold its job-store lock): shutting down in the middle of one lets the loop look
            # for a fired one-off job among the pending ones and die of JobLookupError.
            self._scheduler.remove_all_jobs()
            self._scheduler.shutdown(wait=False)


@dataclass
class _ManualJob:
    trigger: Any
    job: Job
    next_at: datetime | None


class ManualJobs:
    """The same triggers, fired by `run_due(now)`: schedules on an injected clock."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._jobs: dict[str, _ManualJob] = {}

    def every(self, name: str, seconds: float, job: Job) -> None:
        trigger = _interval(seconds, start=self._now())
        self._jobs[name] = _ManualJob(trigger, _logged(name, job), None)
        self._jobs[name].next_at = trigger.get_next_fire_time(None, self._now())

    def cron(self, name: str, schedule: str, job: Job, *, timezone: str = "UTC") -> None:
        trigger = CrontabTrigger(schedule, timezone)
        self._jobs[name] = _ManualJob(trigger, _logged(name, job), None)
        self._jobs[name].next_at = trigger.get_next_fire_time(None, self._now())

    def at(self, name: str, when: datetime, job: Job) -> None:
        trigger = _once(when)
        self._jobs[name] = _ManualJob(trigger, _logged(name, job), None)
        self._jobs[name].next_at = trigger.get_next_fire_time(None, self._now())

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        self._jobs.clear()

    def run_due(self) -> int:
        """Fire every job whose time has come (once, even if several times were missed, as
        the background scheduler's `coalesce` does); return how many fired."""
        now = self._now()
        fired = 0
        for name, entry in list(self._jobs.items()):
            if entry.next_at is None:
                del self._jobs[name]  # a one-off that has fired
            elif entry.next_at <= now:
                entry.job()
                fired += 1
                entry.next_at = entry.trigger.get_next_fire_time(entry.next_at, now)
                while entry.next_at is not None and entry.next_at <= now:
                    entry.next_at = entry.trigger.get_next_fire_time(entry.next_at, now)
        return fired


def _interval(seconds: float, *, start: datetime | None = None) -> Any:
    first = (start or datetime.now(UTC)) + timedelta(seconds=seconds)
    return IntervalTrigger(seconds=seconds, start_date=first, timezone=UTC)


class CrontabTrigger(BaseTrigger):  # type: ignore[misc]
    """A crontab(5) schedule for APScheduler, computed by croniter.

    APScheduler 3's own `CronTrigger.from_crontab` numbers weekdays from Monday (its docs
    call it a historical mistake), so `0 18 * * 5` would fire on Saturdays; croniter reads
    cron as crontab does, and as the change windows and validation already do.
    """

    def __init__(self, schedule: str, timezone: str = "UTC") -> None:
        self.schedule = schedule
        self.zone = ZoneInfo(timezone)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        start = (previous_fire_time or now).astimezone(self.zone)
        found: datetime = croniter(self.schedule, start).get_next(datetime)
        return found

    def __str__(self) -> str:
        return f"crontab[{self.schedule} {self.zone.key}]"


def _once(when: datetime) -> Any:
    return DateTrigger(run_date=when, timezone=UTC)


def _logged(name: str, job: Job) -> Job:
    """A job that logs its exception instead of losing it in the scheduler's thread."""

    def run() -> None:
        try:
            job()
        except Exception:
            log.exception("scheduled job %s failed", name)

    return run
