"""Notice when the tracked branch moves: file events on a local repository, fetches of a remote.

Pipeline: **git** -> queue. One thread owns reading the head. It wakes when
- watchdog reports a write to the refs of a local repository (a commit lands in well under a
  second; there is no polling interval to wait for);
- the poll job fires (`--poll-interval`) or a webhook asks for a fetch, for a remote one;
then (for a remote) fetches, reads the branch head and, if it moved, calls `on_head`. Bursts
collapse by themselves: many wake-ups while the thread is busy become one more look.

Fetches go through a circuit breaker: after repeated failures they back off exponentially
(with jitter) instead of hammering a remote that is down; each fetch is logged and counted,
and the first success closes the breaker again. A fetch that fails leaves the mirror usable:
the daemon keeps serving what it has.

A look that cannot read the head (the repository briefly unreadable, a moved `.git`) is a
`problem` until a look succeeds: `/readyz` answers 503 from it without calling git. The
look is tried again with backoff and jitter, and the head it could not act on is acted on
then (the last head acted on only moves once `on_head` succeeded), so a commit that meets
an unreadable repository is late, not lost. A local repository is also looked at every poll
interval, which notices a recovery no file event reports.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from gitopsd.adapters import faults
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.adapters.scheduling import Jobs
from gitopsd.adapters.watching import RefsWatcher
from gitopsd.engine import retrying
from gitopsd.engine.breaker import CircuitBreaker
from gitopsd.engine.ports import Clock
from gitopsd.errors import GitopsdError, GitSourceError
from gitopsd.model.manifests import RetryPolicy

log = logging.getLogger(__name__)

OnHead = Callable[[str, float], None]  # (new head sha, monotonic time it was first seen)
OnFetch = Callable[[str], None]  # result: success, failure, circuit_open (not tried)
LOOK_AGAIN = RetryPolicy(attempts=100, backoff=1.0, max_backoff=30.0)


class HeadWatch:
    def __init__(
        self,
        source: GitSource,
        *,
        clock: Clock,
        on_head: OnHead,
        on_fetch: OnFetch,
        jobs: Jobs,
        poll_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._clock = clock
        self._on_head = on_head
        self._on_fetch = on_fetch
        self._jobs = jobs
        self._poll_interval = poll_interval
        self._monotonic = monotonic
        self._breaker = CircuitBreaker()
        self._wake = threading.Event()
        self._fetch_wanted = threading.Event()
        self._stopping = threading.Event()
        self._last: str | None = None
        self._problem: str | None = None
        self._failed_looks = 0
        self._watcher: RefsWatcher | None = None
        self._thread = threading.Thread(target=self._loop, name="head-watch", daemon=True)

    @property
    def problem(self) -> str | None:
        """Why the last look could not read the head, or None when it could."""
        return self._problem

    @property
    def is_remote(self) -> bool:
        return self._source.is_mirror

    def start(self, current: str) -> None:
        """Start watching, `current` being the head the daemon has already acted on."""
        self._last = current
        if self.is_remote:
            self._jobs.every("poll", self._poll_interval, lambda: self.request_fetch("poll"))
        else:
            self._watcher = RefsWatcher(self._source.common_dir, self.poke)
            self._watcher.start()
            self._jobs.every("poll", self._poll_interval, self.poke)
        self._thread.start()
        self.poke()  # a commit between loading and watching is not missed

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.stop()
        if self._thread.ident is not None:  # started (not in `serve --once`)
            self._thread.join(timeout=10)

    def poke(self) -> None:
        """The refs may have moved: look again."""
        self._wake.set()

    def request_fetch(self, reason: str) -> None:
        """Fetch the remote (poll, webhook) and look again; ignored for a local repository."""
        if not self.is_remote:
            self.poke()
            return
        log.debug("fetch requested: %s", reason)
        self._fetch_wanted.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            seen_at = self._monotonic()
            try:
                self._look(seen_at)
            except Exception as error:  # the watch must survive a bad moment of git
                self._failed(error)
            else:
                if self._problem is not None:
                    log.info("the head of %s can be read again", self._source.branch)
                self._problem, self._failed_looks = None, 0
                if self._watcher is not None:
                    self._watcher.follow()

    def _failed(self, error: Exception) -> None:
        """Look again after a backoff with jitter, and then say why (for readiness): whoever
        sees the problem can count on the look again."""
        self._failed_looks += 1
        wait = retrying.delay_before(self._failed_looks + 1, LOOK_AGAIN, uniform=random.uniform)
        self._jobs.at("look-again", self._clock.now() + timedelta(seconds=wait), self.poke)
        self._problem = faults.describe(error)
        if faults.is_transient(error) or isinstance(error, GitopsdError):
            log.warning("cannot read the head of %s, again in %.1fs: %s",
                        self._source.branch, wait, self._problem)  # fmt: skip
        else:
            log.exception("reading the head of %s failed", self._source.branch)

    def _look(self, seen_at: float) -> None:
        if self._fetch_wanted.is_set():
            self._fetch_wanted.clear()
            self._fetch()
        head = self._source.head()
        if head != self._last:
            self._on_head(head, seen_at)
            self._last = head  # only now: a head that could not be acted on is tried again

    def _fetch(self) -> None:
        now = self._monotonic()
        if not self._breaker.allows(now):
            self._on_fetch("circuit_open")
            return
        try:
            self._source.fetch()
        except GitSourceError as error:
            wait = self._breaker.failed(now, uniform=random.uniform)
            self._on_fetch("failure")
            if wait:
                log.warning("%s; circuit open, next fetch in %.0fs", error, wait)
            else:
                log.warning("%s", error)
            return
        if self._breaker.failures:
            log.info("fetch of %s succeeded again; circuit closed", self._source.shown)
        self._breaker.succeeded()
        self._on_fetch("success")
