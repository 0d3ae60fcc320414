"""One thread that looks, for every walk in progress, whether it was asked to stop.

A cancel asked through the store (`gitopsd cancel`, the API) and the end of a run's
`run_timeout` are found by looking, every CANCEL_POLL seconds, while the run's own thread is
busy with its steps. A thread of its own for each walk would be one more thread started and
ended for every run, and each new thread takes the next of glibc's per-thread heaps, which all
keep what they freed (benchmarks/README.md, memory: with no look at all the daemon grew +9.5%
over 100 commits, with a thread a walk +11.5%, with this one +11.2%, where a point is noise;
measured before the command line capped glibc's heaps at two, adapters/allocator.py).
So the walks of a workspace share this one thread, which sleeps while none is in progress.

A cancel asked of this process (the daemon's API) also stops its walk at once, without
waiting for the flag to reach the store (`stop_now`): while another process holds the store's
write lock, the flag may take seconds to be written, and the drivers must not run meanwhile.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)
CANCEL_POLL = 0.25  # seconds between looks


class Lookout:
    def __init__(self, every: float = CANCEL_POLL) -> None:
        self.every = every
        self._looks: dict[int, Callable[[], None]] = {}
        self._stops: dict[int, tuple[str, Callable[[], None]]] = {}  # run id, its stop
        self._keys = itertools.count()
        self._changed = threading.Condition(threading.Lock())
        # held while looking: a walk that stops being watched waits for a look in progress,
        # so no look at it comes after its end
        self._looking = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(
        self, look: Callable[[], None], *, run_id: str = "", stop: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """`look` is called every `every` seconds, from the lookout's thread, until the
        block ends; an exception it raises is logged, and it is called again next time.
        `stop` cancels the walk of `run_id` when `stop_now` is asked for it meanwhile."""
        with self._changed:
            key = next(self._keys)
            self._looks[key] = look
            if stop is not None:
                self._stops[key] = (run_id, stop)
            self._start()
            self._changed.notify()
        try:
            yield
        finally:
            with self._looking, self._changed:
                del self._looks[key]
                self._stops.pop(key, None)

    def stop_now(self, run_id: str) -> bool:
        """Cancel the walks of `run_id` in progress here; whether there was one."""
        with self._changed:
            stops = [stop for walked, stop in self._stops.values() if walked == run_id]
        for stop in stops:
            stop()
        return bool(stops)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._watch, name="run-lookout", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._looks)
                self._changed.wait(self.every)
            with self._looking:
                with self._changed:
                    looks = list(self._looks.values())
                for look in looks:
                    try:
                        look()
                    except Exception:
                        log.warning("cannot look for a stop of a run now", exc_info=True)
