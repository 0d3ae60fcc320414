"""The one walker of every run: start ready steps, settle finished ones, stop when told.

Plan, apply, destroy and prune runs differ only in their graph (engine/stepping.py) and in
what starting one of their steps means (a `Starter`). Which step is ready is decided by the
pure `stepping.Schedule`; this module only starts steps on a thread pool of the
environment's `parallelism`, settles them, and turns a cancel requested through the store
(`gitopsd cancel`, the API) or the end of the run's `run_timeout` into the run's cancel
flag, which stops every driver (SIGTERM, then SIGKILL after its grace) within a second.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

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
        self.schedule = Schedule(nodes, recorded_statuses(nodes, book))
        self.parallelism = parallelism
        self.timeout = timeout
        self.timed_out = False
        self._next_look = 0.0
        self._halted = threading.Event()  # a failure stopped the run: queued steps stay

    def walk(self, start: Starter, refuse: Refuser) -> Ending:
        """Run every step to the end (or to a stop); raise Interrupted when draining.

        Ready steps are handed to the pool up to twice its `parallelism` at a time: its
        threads take the next as soon as one is free, without waiting for this thread, and
        a run of 10,000 ready steps does not hold a future, a context and a task for each at
        once (benchmarks/README.md). A step whose turn comes after the run stopped does not
        start. Finished steps come back through a queue, so settling one costs the same
        with 10 or 1,000 in flight."""
        finished: queue.Queue[tuple[StepKey, Future[StepStatus]]] = queue.Queue()
        in_flight, room = 0, 2 * self.parallelism
        with ThreadPoolExecutor(self.parallelism, thread_name_prefix="step") as pool:
            while True:
                if self._stopping():
                    self.schedule.stop()
                if self.schedule.halted:
                    self._halted.set()
                for key in self.schedule.take(room - in_flight):
                    # a copy of this thread's context, so log lines keep the run's id
                    context = contextvars.copy_context()
                    task = partial(self._guarded, start, refuse, self.nodes[key])
                    future = pool.submit(context.run, task)
                    future.add_done_callback(partial(_report, finished, key))
                    in_flight += 1
                if not in_flight:
                    break
                try:
                    key, future = finished.get(timeout=CANCEL_POLL)
                except queue.Empty:
                    continue
                in_flight -= 1
                self.schedule.settle(key, future.result())
        return self._ending()

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
        if self._halted.is_set() or services.cancel.is_set() or services.draining.is_set():
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


def _report(
    finished: queue.Queue[tuple[StepKey, Future[StepStatus]]],
    key: StepKey,
    future: Future[StepStatus],
) -> None:
    finished.put((key, future))
