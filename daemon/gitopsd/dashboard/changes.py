"""Telling open pages that something changed, at a cost that does not grow with them.

One poll per daemon, not one per open page: while at least one page listens (and for
`LINGER` seconds after the last one left, so that moving from page to page does not lose a
change), a single task takes a fingerprint of what the pages show (the status, the newest
event and run) every `interval` seconds and, when it differs, raises the version and wakes
every listener. A page is rendered with the version it shows and listens from there; it then
fetches its new rendering. The first listener of a scope waits for a first look, the
baseline, before its stream starts: a page rendered just before that and changed in between
learns of it at the next change.

Each scope (the environments a token reaches, `Identity.environments`) has its own version,
computed from its reached environments only (`api.scopes`): a viewer limited to dev is never
woken by a change in prod, so the stream's timing tells them nothing of the environments
they may not see. The scopes are the few of the tokens file, so the poll stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from gitopsd.api import scopes
from gitopsd.runtime.control import Control, Identity

INTERVAL = 1.0
LINGER = 30.0

Scope = frozenset[str] | None  # `Identity.environments`: None reaches every environment


@dataclass
class _Watch:
    """One scope's version, what woke its listeners, and the poll's view of it."""

    identity: Identity  # whose reach the fingerprint is cut to (any of the scope's)
    version: int = 0
    listeners: int = 0
    idle: float = 0.0  # seconds without a listener
    last: str | None = None  # the fingerprint of the previous look; None: no baseline
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        woken, self.event = self.event, asyncio.Event()
        woken.set()


class Changes:
    """Per scope, a version number that goes up when what its viewers may see changes."""

    def __init__(
        self, control: Control, *, interval: float = INTERVAL, linger: float = LINGER
    ) -> None:
        self._control = control
        self._interval = interval
        self._linger = linger
        self.closed = False  # the daemon is stopping: streams end so the server can
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: dict[Scope, _Watch] = {}
        self._task: asyncio.Task[None] | None = None

    def _watch(self, identity: Identity) -> _Watch:
        found = self._watches.get(identity.environments)
        if found is None:
            # not looked at until a page of this scope listens (`listening`)
            found = self._watches[identity.environments] = _Watch(identity, idle=self._linger)
        return found

    def version(self, identity: Identity) -> int:
        """The version of what `identity` may see, as a page rendered now shows it."""
        return self._watch(identity).version

    @contextlib.asynccontextmanager
    async def listening(self, identity: Identity) -> AsyncIterator[None]:
        """While in this block, the poll runs (started by the first listener) and looks at
        what `identity` reaches, from a baseline taken before the block starts."""
        watch = self._watch(identity)
        watch.listeners += 1
        watch.idle = 0.0
        self._loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._poll())
        try:
            if watch.last is None:
                with contextlib.suppress(Exception):  # no baseline: the poll's first look sets it
                    watch.last = (await run_in_threadpool(_fingerprints, self._control, [watch]))[0]
            yield
        finally:
            watch.listeners -= 1

    def close(self) -> None:
        """End every stream now (from any thread, a signal handler too): an open page would
        otherwise hold the server's graceful stop for its whole timeout."""
        self.closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for watch in list(self._watches.values()):
            watch.wake()

    async def after(self, identity: Identity, seen: int, *, timeout: float) -> int:
        """`identity`'s version once it is past `seen`, or as it is after `timeout` seconds."""
        watch = self._watch(identity)
        if watch.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.event.wait(), timeout)
        return watch.version

    async def _poll(self) -> None:
        while not self.closed:
            watched = [w for w in self._watches.values() if w.idle < self._linger]
            if not watched:
                return
            with contextlib.suppress(Exception):  # a failing store may answer at the next look
                looks = await run_in_threadpool(_fingerprints, self._control, watched)
                for watch, current in zip(watched, looks, strict=True):
                    if watch.last is not None and current != watch.last:
                        watch.version += 1
                        watch.wake()
                    watch.last = current
            await asyncio.sleep(self._interval)
            for watch in watched:
                watch.idle = 0.0 if watch.listeners > 0 else watch.idle + self._interval
                if watch.idle >= self._linger:
                    watch.last = None  # the next look after an idle time sets the baseline


def _fingerprints(control: Control, watched: list[_Watch]) -> list[str]:
    status = control.status()  # one look at the status for every scope
    return [fingerprint(control, watch.identity, status) for watch in watched]


def fingerprint(control: Control, identity: Identity, status: dict[str, Any]) -> str:
    """What changes when anything `identity` may see changes: the status of the environments
    it reaches, their newest event and run (nothing of the others)."""
    reached = scopes.within(identity, status, "environments")
    if identity.environments is None:
        newest = [(control.events(limit=1)["events"], control.runs(limit=1)["runs"])]
    else:
        names = [e["name"] for e in reached["environments"]]
        newest = [
            (control.events(n, limit=1)["events"], control.runs(n, limit=1)["runs"]) for n in names
        ]
    return repr((reached, newest))
