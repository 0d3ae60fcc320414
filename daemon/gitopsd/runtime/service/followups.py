"""Work the daemon asks of itself: promotions, scheduled drift checks, and looking again.

Pipeline: scheduler -> **follow-ups** -> queue. Besides git and the API, three things put
requests on the environments' queues, all through the scheduler (so tests drive them with an
injected clock):
- promotions of `auto` environments: when their upstream verifies a revision, and on a beat
  (which also notices approvals given on the command line); and the promotion an approval
  through the API completed (a person's, of the revision they asked for);
- each environment's `drift.schedule`, registered again when the manifests change it;
- a request to repeat at a moment: a soak ending, a window opening, a lease another process
  holds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gitopsd.adapters.scheduling import Jobs
from gitopsd.engine.loading import EnvironmentEntry, Repository
from gitopsd.engine.ports import Clock
from gitopsd.engine.queueing import Priority, Request
from gitopsd.model.state import RequestKind
from gitopsd.runtime.promotion.promoting import Completion
from gitopsd.runtime.runs.workspace import new_run_id

BEAT = 15.0  # seconds between looks at every auto-promoted environment and drift schedule
BUSY_RETRY = 5.0  # seconds before retrying a request whose environment another process holds
COMPLETED = "approval"  # the trigger of a promotion that the approval completing it asked for


class FollowUps:
    def __init__(
        self,
        *,
        jobs: Jobs,
        clock: Clock,
        submit: Callable[[Request], None],
        repository: Callable[[], Repository | None],
        stopping: Callable[[], bool],
    ) -> None:
        self._jobs = jobs
        self._clock = clock
        self._submit = submit
        self._repository = repository
        self._stopping = stopping
        self._drift_schedules: dict[str, str] = {}

    def start(self) -> None:
        self.beat()
        self._jobs.every("beat", BEAT, self.beat)

    def beat(self) -> None:
        """Promotions that may have become due; drift schedules that changed."""
        self.promote_auto()
        self.schedule_drift_checks()

    def promote_auto(self) -> None:
        for name, entry in self._environments():
            if entry.manifest.upstream is not None and entry.manifest.spec.promotion.auto:
                self._submit(self.promotion(name))

    def promote_followers(self, upstream: str) -> None:
        """`upstream` verified a revision: ask each environment auto-promoted from it."""
        for name, entry in self._environments():
            if entry.manifest.upstream == upstream and entry.manifest.spec.promotion.auto:
                self._submit(self.promotion(name))

    def schedule_drift_checks(self) -> None:
        """Each environment's `drift.schedule` as a cron job (again when it changes)."""
        for name, entry in self._environments():
            schedule = entry.manifest.spec.drift.schedule
            if schedule is None or self._drift_schedules.get(name) == schedule:
                continue
            self._drift_schedules[name] = schedule
            self._jobs.cron(f"drift-{name}", schedule, self._when_running(self._drift_job(name)))

    def promotion(self, environment: str) -> Request:
        return self._request(environment, Priority.COMMIT, RequestKind.PROMOTE, trigger="promotion")

    def completed(self, environment: str, completion: Completion) -> Request:
        """The promotion an approval completed (runtime.promotion.promoting.Completion): the
        environment's own, or the one a person asked for, of that revision, as theirs."""
        if completion.asked_by is None:
            return self.promotion(environment)
        return Request(
            id=new_run_id(self._clock),
            environment=environment,
            priority=Priority.OPERATOR,
            action=RequestKind.PROMOTE,
            revision=completion.revision,
            trigger=COMPLETED,
            actor=completion.asked_by,
        )

    def drift_check(
        self, environment: str, *, priority: Priority, actor: str, remediate: bool = False
    ) -> Request:
        """A drift check request; `remediate`: a person asks that drift be repaired (as
        `gitopsd drift --remediate`), which no suspension holds (`drifting.check_now`)."""
        trigger = "schedule" if priority is Priority.SCHEDULED else "api"
        return self._request(
            environment,
            priority,
            RequestKind.DRIFT,
            trigger=trigger,
            actor=actor,
            remediate=remediate,
        )

    def later(self, when: datetime, request: Request) -> None:
        """Submit `request` at `when`; one pending look per environment and action."""
        name = f"later-{request.environment}-{request.action}"
        self._jobs.at(name, when, self._when_running(lambda: self._submit(request)))

    def retry_at(self, when: datetime, request: Request) -> None:
        """Submit `request` again at `when` (a transient fault, a busy lease, a recorded
        request's wait for a window, a soak or a suspension): its own job, so it never
        replaces another request's look-again (a request left without one would stay
        waiting for ever)."""
        name = f"retry-{request.id}"
        self._jobs.at(name, when, self._when_running(lambda: self._submit(request)))

    def _drift_job(self, environment: str) -> Callable[[], None]:
        def enqueue() -> None:
            self._submit(
                self.drift_check(environment, priority=Priority.SCHEDULED, actor="schedule")
            )

        return enqueue

    def _request(
        self, environment: str, priority: Priority, action: RequestKind, *, trigger: str,
        actor: str = "gitopsd", remediate: bool = False,
    ) -> Request:  # fmt: skip
        return Request(
            id=new_run_id(self._clock),
            environment=environment,
            priority=priority,
            action=action,
            trigger=trigger,
            actor=actor,
            remediate=remediate,
        )

    def _environments(self) -> list[tuple[str, EnvironmentEntry]]:
        repository = self._repository()
        return list(repository.environments.items()) if repository else []

    def _when_running(self, job: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            if not self._stopping():
                job()

        return guarded
