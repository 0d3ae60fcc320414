"""Run many driver calls at once on a few threads ("lanes"), each waiting for whichever of
its drivers exits first.

A thread per running driver would be simpler, but every one of them wakes for each system
call it makes and hands the interpreter lock to the next: with 16 drivers at once that
hand-over cost more CPU than the drivers did (strace counted about 95 futex calls a call).
A lane keeps its share of the drivers running, polls their pidfds and output pipes, reads
what they print as it comes, finishes the ones that exit and starts the next calls; two lanes
keep a driver starting while the other lane waits for a `vfork` to return. Timeouts and cancels
stay with the runner's watchdog.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from gitopsd.engine.ports import DriverCall, DriverResult

LANES = 2  # enough to keep a driver starting while the other lane waits on a vfork


class Started(Protocol):
    """A call whose driver runs."""

    @property
    def pid(self) -> int: ...

    @property
    def output(self) -> int:
        """The read end of the pipe the driver prints to (non-blocking)."""
        ...

    def read_output(self) -> bool:
        """Keep what the pipe has now; whether it reached end of file."""
        ...


S = TypeVar("S", bound=Started)


class Lanes(Generic[S]):
    """`calls` run `parallelism` at a time; `results[i]` is set when call `i` ends."""

    def __init__(
        self,
        calls: Sequence[DriverCall],
        *,
        start: Callable[[DriverCall], S | DriverResult],
        finish: Callable[[S], DriverResult],
        abandon: Callable[[S], None],
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> None:
        self.start, self.finish, self.abandon = start, finish, abandon
        self._on_done = on_done
        self._pending: Iterator[tuple[int, DriverCall]] = iter(enumerate(calls))
        self._next_lock = threading.Lock()
        self.results: list[DriverResult | None] = [None] * len(calls)

    def run(self, parallelism: int) -> list[DriverResult]:
        """Run every call and return the results in the calls' order; the first exception a
        lane met is raised once every lane has stopped (their drivers killed)."""
        parallelism = max(1, parallelism)
        count = min(LANES, parallelism, max(1, len(self.results)))
        widths = [parallelism // count + (n < parallelism % count) for n in range(count)]
        errors: list[BaseException] = []
        lanes = [
            threading.Thread(
                target=_Lane(self, width).run, args=(errors,), name=f"gitopsd-lane-{n}"
            )
            for n, width in enumerate(widths)
        ]
        for lane in lanes:
            lane.start()
        for lane in lanes:
            lane.join()
        if errors:
            raise errors[0]
        return [result for result in self.results if result is not None]

    def next_call(self) -> tuple[int, DriverCall] | None:
        with self._next_lock:
            return next(self._pending, None)

    def done(self, index: int, result: DriverResult) -> None:
        self.results[index] = result
        if self._on_done is not None:
            self._on_done(index, result)


class _Lane(Generic[S]):
    """One lane: up to `width` running drivers, their pidfds and output pipes in one poll."""

    def __init__(self, lanes: Lanes[S], width: int) -> None:
        self.lanes = lanes
        self.width = width
        self.poller = select.poll()
        self.running: dict[int, tuple[int, S]] = {}  # pidfd -> (index, started call)
        self.reading: dict[int, S] = {}  # output pipe -> started call, until end of file

    def run(self, errors: list[BaseException]) -> None:
        """Run calls until none is left or a lane failed (then this one's drivers are killed)."""
        try:
            self._fill()
            while self.running and not errors:
                for fd, _ in self.poller.poll(250):  # a bounded wait: another lane may fail
                    if fd in self.reading:
                        if self.reading[fd].read_output():
                            self._stop_reading(fd)
                    elif fd in self.running:  # not a pipe finished earlier in this batch
                        self._exited(fd)
                self._fill()
        except BaseException as error:
            errors.append(error)
        finally:
            for pidfd, (_, started) in self.running.items():
                os.close(pidfd)
                self.lanes.abandon(started)

    def _exited(self, pidfd: int) -> None:
        """The driver behind `pidfd` exited: finish its call, which reads the rest of its
        output (a child it left may hold the pipe open: its end of file is not awaited)."""
        self.poller.unregister(pidfd)
        os.close(pidfd)
        index, started = self.running.pop(pidfd)
        if started.output in self.reading:
            self._stop_reading(started.output)
        try:
            result = self.lanes.finish(started)
        except BaseException:
            self.lanes.abandon(started)
            raise
        self.lanes.done(index, result)

    def _stop_reading(self, output: int) -> None:
        self.poller.unregister(output)
        del self.reading[output]

    def _fill(self) -> None:
        """Start calls until `width` drivers run in this lane or no call is left."""
        while len(self.running) < self.width:
            item = self.lanes.next_call()
            if item is None:
                return
            index, call = item
            started = self.lanes.start(call)
            if isinstance(started, DriverResult):  # could not start: its result is final
                self.lanes.done(index, started)
                continue
            try:
                pidfd = os.pidfd_open(started.pid)
            except BaseException:  # out of descriptors: nothing would wait for this driver
                self.lanes.abandon(started)
                raise
            self.running[pidfd] = (index, started)
            self.poller.register(pidfd, select.POLLIN)
            self.reading[started.output] = started
            self.poller.register(started.output, select.POLLIN)
