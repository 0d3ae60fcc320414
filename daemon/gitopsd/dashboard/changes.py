"""Telling open pages that something changed, at a cost that does not grow with them.

One poll per daemon, not one per open page: while at least one page listens, a single task
takes a fingerprint of what the pages show (the status, the newest event and run) every
`interval` seconds and, when it differs, wakes every listener. A page then fetches its new
rendering. With no listener, nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from gitopsd.runtime.control import Control

INTERVAL = 1.0


class Changes:
    """A version number that goes up when the daemon's visible state changes."""

    def __init__(self, control: Control, *, interval: float = INTERVAL) -> None:
        self._control = control
        self._interval = interval
        self.version = 0
        self._listeners = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """While in this block, the poll runs (started by the first listener)."""
        self._listeners += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield
        finally:
            self._listeners -= 1

    async def after(self, seen: int, *, timeout: float) -> int:
        """The version once it is past `seen`, or as it is after `timeout` seconds."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        return self.version

    async def _poll(self) -> None:
        last: str | None = None
        while self._listeners > 0:
            current: str | None = last
            with contextlib.suppress(Exception):  # a failing store may answer at the next look
                current = await run_in_threadpool(fingerprint, self._control)
            if current != last:
                last = current
                self.version += 1
                woken, self._event = self._event, asyncio.Event()
                woken.set()
            await asyncio.sleep(self._interval)


def fingerprint(control: Control) -> str:
    """What changes when anything a page shows changes: the status, the newest event and run."""
    status = control.status()
    events = control.events(limit=1)["events"]
    runs = control.runs(limit=1)["runs"]
    return repr((status, events, runs))
