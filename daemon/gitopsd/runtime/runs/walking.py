"""The one walker of every run: start ready steps, settle finished ones, stop when told.

Plan, apply, destroy and prune runs differ only in their graph (engine/stepping.py) and in
what starting one of their steps means (a `Starter`). Which step is ready is decided by the
pure `stepping.Schedule`; this module only runs steps, at most `parallelism` drivers at once,
settles them, and turns a cancel requested through the store (`gitopsd cancel`, the API) or the
end of the run's `run_timeout` into the run's cancel flag, which stops every driver (SIGTERM,
then SIGKILL after its grace) within a second.

`parallelism` counts drivers: a step's driver takes one of the walk's `parallelism` slots
for its run alone (`steps.waiting_on_driver`). From a parallelism of 8 on, a few steps more
(one per eight) are taken ahead: each is decided and recorded `running`, then waits for the
next free slot, and its driver starts the moment another one exits, while that one's result
is still being recorded. The `running` record still comes before the driver's start, as the
fault suite requires; it is only no longer on the way from one driver's exit to the next
one's start (benchmarks/README.md, api.py).

The thread that walks is the first worker; another joins only when a step is ready while
every worker waits on a driver, a slot or its next try. A commit that changes one component
of a thousand decides its dependents in the environment's own long-lived thread, where a pool
of sixteen short-lived workers spread what deciding allocates over every one of glibc's
per-thread heaps, each keeping its freed memory (benchmarks/README.md, memory; measured with
glibc's sixteen heaps, before the command line capped them at two: adapters/allocator.py). A
worker that settles a step takes the next ready one itself: handing each finished step to
another thread woke two more threads per step (benchmarks/README.md, "Where the engine's time
goes").
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gitopsd.engine.stepping import GOOD, Node, Progress, Schedule, StepKey
from gitopsd.errors import GitopsdError, is_temporary
from gitopsd.model.state import Run, StepStatus
from gitopsd.runtime.runs.steps import (
    DriverSlot,
    Interrupted,
    NotStartedError,
    Services,
    StepBook,
    working_for,
)

AHEAD_PER = 8  # one step taken ahead of the free slots per this many of `parallelism`

log = logging.getLogger(__name__)

Starter = Callable[[Node], StepStatus]
Refuser = Callable[[Node, str], StepStatus]


@dataclass(frozen=True)
class Ending:
    """How a walk ended: the final progress, and whether a cancel or the timeout ended it."""

    progress: Progress
    cancelled: bool
    timed_out: bool


def recorded_statuses(nodes: Sequence[Node], book: StepBook) -> dict[StepKey, StepStatus]:
    """What a (resumed) run starts from: steps recorded succeeded or skipped are done, and
    a step recorded failed spent its tries: the walk goes on as that failure decided (it
    stops, or blocks what depends on it), rather than trying it again or starting what it
    held back. Every other step runs (again), health checks and gates included: one left
    running may or may not have done its work."""
    statuses: dict[StepKey, StepStatus] = {}
    for node in nodes:
        status = book.status(*node.key)
        kept = status in GOOD or status is StepStatus.FAILED
        statuses[node.key] = status if status is not None and kept else StepStatus.PENDING
    return statuses


@dataclass(frozen=True)
class _Helpers:
    """Workers beyond the walking thread, started on the walk's pool as they are needed."""

    pool: ThreadPoolExecutor
    work: Callable[[], None]

    def add(self) -> None:
        # a copy of the context of the thread that asks, so log lines keep the run's id
        self.pool.submit(contextvars.copy_context().run, self.work)


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
        self.parallelism = max(1, parallelism)
        # steps in progress at most: those whose drivers hold a slot, and a few ahead
        self.most_steps = self.parallelism + self.parallelism // AHEAD_PER
        self.timeout = timeout
        self.timed_out = False
        # one lock over the schedule and the slots; workers wait for a ready step or a free
        # slot, the walker for the end
        self._lock = threading.Lock()
        self._step_ready = threading.Condition(self._lock)
        self._slot_free = threading.Condition(self._lock)
        self._over = threading.Condition(self._lock)
        self._running = 0  # steps taken and not yet settled
        self._driving = 0  # drivers holding a slot
        self._kept = threading.local()  # `slot`: this worker kept its failed driver's slot
        self._working = 0
        self._waiting = 0  # workers whose step waits on its driver, a slot or its next try
        self._helpers: _Helpers | None = None  # while walking
        self._error: BaseException | None = None  # the first a step raised (Interrupted...)

    def walk(self, start: Starter, refuse: Refuser) -> Ending:
        """Run every step to the end (or to a stop); raise Interrupted when draining.

        This thread works steps: it takes a ready one, runs it, settles it and takes the next,
        and more workers join while it waits on drivers (`_step_waits`). The workspace's lookout
        looks for a cancel, the timeout or a shutdown meanwhile. A step's exception (an
        interruption, a fencing) stops the run: it is raised here once every running step has
        ended."""
        self._stop_if_stopping()
        self._working = 1
        lookout = self.services.lookout.watching(
            self._stop_if_stopping, run_id=self.run.id, stop=self._cancel_now
        )
        work = self._worker(start, refuse)
        with ThreadPoolExecutor(self.most_steps, thread_name_prefix="step") as pool, lookout:
            self._helpers = _Helpers(pool, work)
            try:
                work()
                self._wait_for_end()
            finally:
                self._helpers = None  # it holds this walk: no cycle is left behind
        if self._error is not None:
            raise self._error
        return self._ending()

    def _worker(self, start: Starter, refuse: Refuser) -> Callable[[], None]:
        def work() -> None:
            with working_for(self._step_waits):
                self._work(start, refuse)

        return work

    @contextlib.contextmanager
    def _step_waits(self, driving: bool) -> Iterator[DriverSlot]:
        """While a step waits on its driver (`driving`) or for its next try: if every worker
        waits and a step is ready, another worker joins, up to `most_steps`. A driver first
        waits for one of the `parallelism` slots, and gives it to the next driver the moment
        it exits, unless it failed: then this worker keeps it until the step is settled
        (`_next`), so that the failure stops the walk first. If the walk stopped while the
        step waited (a failure, a cancel, a shutdown), it gets no slot and starts nothing."""
        with self._lock:
            self._give_back_kept()  # a failed try's, now waiting for its next try
            self._waiting += 1
            all_waiting = self._waiting == self._working
            if all_waiting and self._working < self.most_steps and self.schedule.has_ready:
                assert self._helpers is not None, "steps wait on drivers only while walking"
                self._working += 1
                self._helpers.add()
            slot = DriverSlot(granted=not driving or self._take_slot())
        try:
            yield slot
        finally:
            with self._lock:
                self._waiting -= 1
                if driving and slot.granted:
                    if slot.failed:
                        self._kept.slot = True
                    else:
                        self._give_back()

    def _give_back(self) -> None:
        self._driving -= 1
        self._slot_free.notify()

    def _give_back_kept(self) -> None:
        """The slot this worker kept after its driver failed, once that step is settled."""
        if getattr(self._kept, "slot", False):
            self._kept.slot = False
            self._give_back()

    def _take_slot(self) -> bool:
        """A free driver slot, waited for; False if the walk stopped first."""
        schedule = self.schedule
        self._slot_free.wait_for(lambda: self._driving < self.parallelism or schedule.halted)
        if schedule.halted:
            return False
        self._driving += 1
        return True

    def _wait_for_end(self) -> None:
        with self._over:
            self._over.wait_for(lambda: not self._working)

    def _cancel_now(self) -> None:
        """A cancel asked of this process: the drivers stop before the flag is stored."""
        self.services.cancel.set()
        self._stop_if_stopping()

    def _stop_if_stopping(self) -> None:
        if self._stopping():
            with self._lock:
                self.schedule.stop()
                self._step_ready.notify_all()
                self._slot_free.notify_all()

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
                self._give_back_kept()
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
                self._give_back_kept()
                if self.schedule.halted:  # a failure stopped the walk: nothing more starts
                    self._slot_free.notify_all()
            while True:
                taken = self.schedule.take(1) if self._running < self.most_steps else []
                if taken:
                    self._running += 1
                    if self.schedule.has_ready and self._running < self.most_steps:
                        self._step_ready.notify()  # another ready step: wake a waiting worker
                    return taken[0]
                if not self._running:
                    return None
                self._step_ready.wait()

    def _ending(self) -> Ending:
        progress = self.schedule.progress()
        stopping = self.services.draining.is_set() or self.services.interrupted.is_set()
        if stopping and progress.unstarted:
            raise Interrupted  # the process is stopping: the rest runs when the run resumes
        cancelled = self.services.cancel.is_set() and not self.timed_out
        return Ending(progress, cancelled=cancelled, timed_out=self.timed_out)

    def _guarded(self, start: Starter, refuse: Refuser, node: Node) -> StepStatus:
        """Start `node` unless the run stopped meanwhile (it stays pending then); a bug
        fails the step rather than hang the run (an interruption still propagates)."""
        if self._told_to_stop():
            return StepStatus.PENDING
        try:
            return start(node)
        except NotStartedError:  # the walk stopped while it waited for a driver slot
            return StepStatus.PENDING
        except GitopsdError as error:
            if is_temporary(error):  # the store full or locked past its patience: the step's
                # end cannot be recorded (its driver may well have succeeded); the run stops
                # as a crash stops it, and its resume runs the step again
                log.error("%s %s: %s; the run stops here, to be resumed",
                          node.action.value, node.component, error)  # fmt: skip
                raise
            log.error("%s %s failed: %s", node.action.value, node.component, error)
            return refuse(node, str(error))
        except Exception as error:
            log.exception("%s %s failed unexpectedly", node.action.value, node.component)
            return refuse(node, f"internal error: {error!r}")

    def _stopping(self) -> bool:
        self._look()
        return self._told_to_stop()

    def _told_to_stop(self) -> bool:
        """A cancel (or the timeout), a shutdown, or the process's or lease's interruption."""
        services = self.services
        return (
            services.cancel.is_set() or services.draining.is_set() or services.interrupted.is_set()
        )

    def _look(self) -> None:
        """A cancel asked through the store, or the timeout (the lookout's pace)."""
        if self.services.cancel.is_set():
            return
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
