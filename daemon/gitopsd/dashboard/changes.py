"""Telling open pages that something changed, at a cost that does not grow with them.

One poll per daemon, not one per open page: while at least one page listens (and for
`LINGER` seconds after the last one left, so that moving from page to page does not lose a
change), a single task takes a fingerprint of what the pages show (the status, the newest
event and run) every `interval` seconds and, when it differs, raises the version and wakes
every listener. A page is rendered with the version it shows and listens from there; it then
fetches its new rendering. The first look after an idle time only sets the baseline: a page
rendered just before it and changed in between learns of it at the next change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from gitopsd.runtime.control import Control

INTERVAL = 1.0
LINGER = 30.0


class Changes:
    """A version number that goes up when the daemon's visible state changes."""

    def __init__(
        self, control: Control, *, interval: float = INTERVAL, linger: float = LINGER
    ) -> None:
        self._control = control
        self._interval = interval
        self._linger = linger
        self.version = 0
        self.closed = False  # the daemon is stopping: streams end so the server can
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """While in this block, the poll runs (started by the first listener)."""
        self._listeners += 1
        self._loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._poll())
        try:
            yield
        finally:
            self._listeners -= 1

    def close(self) -> None:
        """End every stream now (from any thread, a signal handler too): an open page would
        otherwise hold the server's graceful stop for its whole timeout."""
        self.closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        woken, self._event = self._event, asyncio.Event()
        woken.set()

    async def after(self, seen: int, *, timeout: float) -> int:
        """The version once it is past `seen`, or as it is after `timeout` seconds."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        return self.version

    async def _poll(self) -> None:
        last: str | None = None
        idle = 0.0  # seconds without a listener
        while idle < self._linger and not self.closed:
            current: str | None = last
            with contextlib.suppress(Exception):  # a failing store may answer at the next look
                current = await run_in_threadpool(fingerprint, self._control)
            if last is not None and current != last:
                self.version += 1
                self._wake()
            last = current
            await asyncio.sleep(self._interval)
            idle = 0.0 if self._listeners > 0 else idle + self._interval


def fingerprint(control: Control) -> str:
    """What changes when anything a page shows changes: the status, the newest event and run."""
    status = control.status()
    events = control.events(limit=1)["events"]
    runs = control.runs(limit=1)["runs"]
    return repr((status, events, runs))
