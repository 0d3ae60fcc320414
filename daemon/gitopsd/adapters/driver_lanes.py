"""Run many driver calls at once on a few threads ("lanes"), each waiting for whichever of
its drivers exits first.

A thread per running driver would be simpler, but every one of them wakes for each system
call it makes and hands the interpreter lock to the next: with 16 drivers at once that
hand-over cost more CPU than the drivers did (strace counted about 95 futex calls a call).
A lane keeps its share of the drivers running, polls their pidfds, finishes the ones that
exit and starts the next calls; two lanes keep a driver starting while the other lane waits
for a `vfork` to return. Timeouts and cancels stay with the runner's watchdog.
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
        self._start, self._finish, self._abandon = start, finish, abandon
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
            threading.Thread(target=self._lane, args=(width, errors), name=f"gitopsd-lane-{n}")
            for n, width in enumerate(widths)
        ]
        for lane in lanes:
            lane.start()
        for lane in lanes:
            lane.join()
        if errors:
            raise errors[0]
        return [result for result in self.results if result is not None]

    def _lane(self, width: int, errors: list[BaseException]) -> None:
        poller = select.poll()
        running: dict[int, tuple[int, S]] = {}  # pidfd -> (index, started call)
        try:
            self._fill(poller, running, width)
            while running and not errors:
                for pidfd, _ in poller.poll(250):  # a bounded wait: another lane may fail
                    poller.unregister(pidfd)
                    os.close(pidfd)
                    index, started = running.pop(pidfd)
                    try:
                        result = self._finish(started)
                    except BaseException:
                        self._abandon(started)
                        raise
                    self._done(index, result)
                self._fill(poller, running, width)
        except BaseException as error:
            errors.append(error)
        finally:
            for pidfd, (_, started) in running.items():
                os.close(pidfd)
                self._abandon(started)

    def _done(self, index: int, result: DriverResult) -> None:
        self.results[index] = result
        if self._on_done is not None:
            self._on_done(index, result)

    def _fill(self, poller: select.poll, running: dict[int, tuple[int, S]], width: int) -> None:
        """Start calls until `width` drivers run in this lane or no call is left."""
        while len(running) < width:
            with self._next_lock:
                item = next(self._pending, None)
            if item is None:
                return
            index, call = item
            started = self._start(call)
            if isinstance(started, DriverResult):  # could not start: its result is final
                self._done(index, started)
                continue
            try:
                pidfd = os.pidfd_open(started.pid)
            except BaseException:  # out of descriptors: nothing would wait for this driver
                self._abandon(started)
                raise
            running[pidfd] = (index, started)
            poller.register(pidfd, select.POLLIN)
