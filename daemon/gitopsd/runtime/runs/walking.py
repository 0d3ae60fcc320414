"""The one walker of every run: start ready steps, settle finished ones, stop when told.

Plan, apply, destroy and prune runs differ only in their graph (engine/stepping.py) and in
what starting one of their steps means (a `Starter`). Which step is ready is decided by the
pure `stepping.Schedule`; this module only runs steps on `parallelism` worker threads, settles
them, and turns a cancel requested through the store (`gitopsd cancel`, the API) or the end of
the run's `run_timeout` into the run's cancel flag, which stops every driver (SIGTERM, then
SIGKILL after its grace) within a second.

A worker that settles a step takes the next ready one itself. Handing each finished step to a
walker thread, and each started one back to a pool thread, woke two more threads per step,
each waiting its turn at the interpreter lock while 16 drivers come and go
(benchmarks/README.md, "Where the engine's time goes").
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gitopsd.engine.stepping import GOOD, Node, Progress, Schedule, StepKey
from gitopsd.model.state import Run, StepStatus
from gitopsd.runtime.runs.steps import Interrupted, Services, StepBook

log = logging.getLogger(__name__)
CANCEL_POLL = 0.25  # seconds between looks at the store's cancel flag

Starter = Callable[[Node], StepStatus]
Refuser = Callable[[Node, str], StepStatus]


@dataclass(frozen=True)
class Ending:
    """How a walk ended: the final progress, and whether a cancel or the timeout ended it."""

    progress: Progress
    cancelled: bool
    timed_out: bool


def recorded_statuses(nodes: Sequence[Node], book: StepBook) -> dict[StepKey, StepStatus]:
    """What a (resumed) run starts from: steps recorded succeeded or skipped are done, every
    other one runs (again), health checks and gates included."""
    statuses: dict[StepKey, StepStatus] = {}
    for node in nodes:
        status = book.status(*node.key)
        statuses[node.key] = status if status in GOOD else StepStatus.PENDING
    return statuses


class Walk:
    def __init__(
        self,
        services: Services,
        run: Run,
        nodes: Sequence[Node],
        book: StepBook,
        *,
        parallelism: int,
        timeout: float | None,
    ) -> None:
        self.services = services
        self.run = run
        self.nodes = {n.key: n for n in nodes}
        statuses = recorded_statuses(nodes, book)
        self.schedule = Schedule(nodes, statuses)
        # a worker for each step left to run, up to `parallelism`: a commit that changes one
        # component of a thousand starts one thread, not sixteen
        self._left = sum(status not in GOOD for status in statuses.values())
        self.parallelism = parallelism
        self.timeout = timeout
        self.timed_out = False
        self._next_look = 0.0
        # one lock over the schedule; workers wait for a ready step, the walker for the end
        self._lock = threading.Lock()
        self._step_ready = threading.Condition(self._lock)
        self._over = threading.Condition(self._lock)
        self._running = 0
        self._working = 0
        self._error: BaseException | None = None  # the first a step raised (Interrupted...)

    def walk(self, start: Starter, refuse: Refuser) -> Ending:
        """Run every step to the end (or to a stop); raise Interrupted when draining.

        Up to `parallelism` workers each take a ready step, run it, settle it and take the
        next; this thread only watches for a cancel, the timeout or a shutdown. A step's
        exception (an interruption, a fencing) stops the run: it is raised here once every
        running step has ended."""
        self._stop_if_stopping()
        self._working = max(1, min(self.parallelism, self._left))
        with ThreadPoolExecutor(self._working, thread_name_prefix="step") as pool:
            for _ in range(self._working):
                # a copy of this thread's context, so log lines keep the run's id
                pool.submit(contextvars.copy_context().run, self._work, start, refuse)
            while not self._wait_for_end(CANCEL_POLL):
                self._stop_if_stopping()
        if self._error is not None:
            raise self._error
        return self._ending()

    def _wait_for_end(self, timeout: float) -> bool:
        with self._over:
            return self._over.wait_for(lambda: not self._working, timeout)

    def _stop_if_stopping(self) -> None:
        if self._stopping():
            with self._lock:
                self.schedule.stop()
                self._step_ready.notify_all()

    def _work(self, start: Starter, refuse: Refuser) -> None:
        """Run ready steps until none is ready and none runs: then the run is over."""
        try:
            key = self._next()
            while key is not None:
                try:
                    status: StepStatus | BaseException = self._guarded(
                        start, refuse, self.nodes[key]
                    )
                except BaseException as error:  # an interruption, a fencing: stop the run
                    status = error
                key = self._next(key, status)
        finally:
            with self._lock:
                self._working -= 1
                self._step_ready.notify_all()
                self._over.notify_all()

    def _next(
        self, done: StepKey | None = None, status: StepStatus | BaseException | None = None
    ) -> StepKey | None:
        """Settle the step this worker ran (an exception: it raised, and the run stops; the
        first one is kept to be raised by the walk), then wait for a ready step and take it;
        None when the run is over."""
        with self._lock:
            if done is not None:
                self._running -= 1
                if isinstance(status, BaseException):
                    self._error = self._error or status
                    self.schedule.stop()
                elif status is not None:
                    self.schedule.settle(done, status)
            while True:
                taken = self.schedule.take(1)
                if taken:
                    self._running += 1
                    if self.schedule.has_ready:
                        self._step_ready.notify()  # another ready step: wake a waiting worker
                    return taken[0]
                if not self._running:
                    return None
                self._step_ready.wait()

    def _ending(self) -> Ending:
        progress = self.schedule.progress()
        if self.services.draining.is_set() and progress.unstarted:
            raise Interrupted  # the process is stopping: the rest runs when the run resumes
        cancelled = self.services.cancel.is_set() and not self.timed_out
        return Ending(progress, cancelled=cancelled, timed_out=self.timed_out)

    def _guarded(self, start: Starter, refuse: Refuser, node: Node) -> StepStatus:
        """Start `node` unless the run stopped meanwhile (it stays pending then); a bug
        fails the step rather than hang the run (an interruption still propagates)."""
        services = self.services
        if services.cancel.is_set() or services.draining.is_set():
            return StepStatus.PENDING
        try:
            return start(node)
        except Exception as error:
            log.exception("%s %s failed unexpectedly", node.action.value, node.component)
            return refuse(node, f"internal error: {error!r}")

    def _stopping(self) -> bool:
        self._look()
        services = self.services
        return services.cancel.is_set() or services.draining.is_set()

    def _look(self) -> None:
        """At most every CANCEL_POLL: a cancel asked through the store, or the timeout."""
        now = time.monotonic()
        if now < self._next_look or self.services.cancel.is_set():
            return
        self._next_look = now + CANCEL_POLL
        found = self.services.store.get_run(self.run.id)
        if found is not None and found.cancel_requested:
            self.services.event(self.run, "run.cancelling", "cancel requested")
            self.services.cancel.set()
        elif self._past_timeout():
            self.timed_out = True
            message = f"run_timeout of {self.timeout:g}s reached: stopping"
            self.services.event(self.run, "run.timed_out", message)
            self.services.cancel.set()

    def _past_timeout(self) -> bool:
        started = self.run.started_at
        if self.timeout is None or started is None:
            return False
        return (self.services.clock.now() - started).total_seconds() >= self.timeout
