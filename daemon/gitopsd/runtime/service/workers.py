"""One worker thread per environment: the only place that environment's runs start.

Pipeline: queue -> **worker** -> run. Every request for an environment (commit, operator,
schedule) lands on its `EnvironmentQueue`; its worker takes them one at a time, so two runs
of one environment never overlap inside the daemon, and the environment's lease in the store
keeps other processes out too. Different environments run side by side.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gitopsd.engine.ports import FencedError
from gitopsd.engine.queueing import EnvironmentQueue, Request
from gitopsd.runtime.runs.steps import Interrupted

log = logging.getLogger(__name__)

Handler = Callable[[Request], None]


class EnvironmentWorker:
    """Takes `environment`'s requests in priority order and hands each to `handle`."""

    def __init__(self, environment: str, handle: Handler) -> None:
        self.environment = environment
        self._handle = handle
        self._queue = EnvironmentQueue()
        self._changed = threading.Condition()
        self._stopping = False
        self._current: Request | None = None
        self._thread = threading.Thread(
            target=self._loop, name=f"worker-{environment}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: Request) -> list[Request]:
        """Queue `request`; return the requests it superseded (see engine.queueing)."""
        with self._changed:
            superseded = self._queue.put(request)
            self._changed.notify()
        return superseded

    def pending(self) -> list[Request]:
        with self._changed:
            return self._queue.pending()

    @property
    def current(self) -> Request | None:
        return self._current

    def is_idle(self) -> bool:
        with self._changed:
            return self._current is None and not len(self._queue)

    def stop(self) -> None:
        """Take no further request; the one in hand carries on."""
        with self._changed:
            self._stopping = True
            self._changed.notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            request = self._next()
            if request is None:
                return
            try:
                self._handle(request)
            except Interrupted:
                log.warning("interrupted %s: it resumes when gitopsd starts again", request.id)
                return
            except FencedError as fenced:  # another daemon leads now: it resumes the run
                log.error("request %s for %s %s", request.id, self.environment, fenced)
                return
            except Exception:  # a worker must outlive any one request
                log.exception("request %s for %s failed", request.id, self.environment)
            finally:
                self._current = None

    def _next(self) -> Request | None:
        with self._changed:
            while not self._stopping and not len(self._queue):
                self._changed.wait()
            if self._stopping:
                return None
            self._current = self._queue.pop()
            return self._current
