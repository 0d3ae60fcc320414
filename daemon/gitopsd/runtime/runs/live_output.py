"""What the drivers of running steps have printed so far, in memory, for the live log view.

A step's output reaches the store only when its driver call ends; until then a reader of the
run's logs (`GET /api/v1/runs/{id}/logs`) finds it here. The driver runner hands it on as it
reads it, redacted and capped exactly as the stored output will be (`DriverCall.on_output`),
so the text kept here is always the start of what the store will hold. It is forgotten when
the call ends: the store has it then. Bounded: one entry per running call, each at most
`limit` characters (the runner's cap keeps it below that already).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from gitopsd.engine.ports import OnOutput

LIMIT = 65536  # characters per step: the command driver hands on at most half its 64 KiB cap


class LiveOutput:
    """The output of the driver calls running now, by run id and step index; thread-safe
    (drivers print on the run's threads, readers read on the API's)."""

    def __init__(self, *, limit: int = LIMIT) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._held: dict[tuple[str, int], list[str]] = {}
        self._sizes: dict[tuple[str, int], int] = {}

    @contextlib.contextmanager
    def kept(self, run_id: str, index: int) -> Iterator[OnOutput]:
        """A callback keeping what step `index` of run `run_id` prints while the block runs
        (a call of its driver); a new attempt starts afresh, as its stored output will."""
        key = (run_id, index)
        with self._lock:
            self._held[key], self._sizes[key] = [], 0

        def printed(text: str) -> None:
            with self._lock:
                pieces = self._held.get(key)
                if pieces is None:
                    return
                room = self._limit - self._sizes[key]
                if room > 0 and text:
                    pieces.append(text[:room])
                    self._sizes[key] += min(room, len(text))

        try:
            yield printed
        finally:
            with self._lock:
                self._held.pop(key, None)
                self._sizes.pop(key, None)

    def text(self, run_id: str, index: int) -> str:
        """What the step's running call printed so far ("" when none is running)."""
        with self._lock:
            pieces = self._held.get((run_id, index))
            if not pieces:
                return ""
            joined = "".join(pieces)
            pieces[:] = [joined]  # joined once, not again at every read
            return joined
