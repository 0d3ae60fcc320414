"""Route each driver call to the runner of its driver type.

Pipeline: execute -> `ports.DriverRunner`. The run engine holds one runner; components may use
different driver types, so this router hands each call to the runner its type
(`engine.drivers.DriverType`, found by `adapters.driver_registry`) made. A type's runner is
made on the first call that needs it: the github-actions runner imports httpx, which a
command that never dispatches a workflow should not pay for at start-up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from gitopsd.engine.drivers import DriverSetup, DriverType
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, DriverRunner, OnStarted
from gitopsd.errors import UnknownDriverError


class DriverRouter:
    """`ports.DriverRunner` over one runner per driver type."""

    def __init__(self, types: Mapping[str, DriverType], setup: DriverSetup) -> None:
        self.types = types
        self._setup = setup
        self._runners: dict[str, DriverRunner] = {}
        self._lock = threading.Lock()

    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,
    ) -> DriverResult:
        try:
            runner = self.runner(call.driver_type)
        except UnknownDriverError as error:
            return DriverResult(None, error=str(error), final=True)
        return runner.run(call, cancel=cancel, on_started=on_started)

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        """Calls of one driver type go to its runner's own `run_many` (the command runner
        shares two threads among its processes); a mix runs a call per thread, so
        `parallelism` holds across driver types."""
        kinds = {call.driver_type for call in calls}
        if len(kinds) == 1 and kinds <= self.types.keys():
            runner = self.runner(kinds.pop())
            return runner.run_many(calls, parallelism=parallelism, cancel=cancel, on_done=on_done)
        return in_threads(self.run, calls, parallelism=parallelism, cancel=cancel, on_done=on_done)

    def runner(self, name: str) -> DriverRunner:
        """The runner of the driver type `name`, made on first use."""
        with self._lock:
            found = self._runners.get(name)
            if found is None:
                kind = self.types.get(name)
                if kind is None:
                    known = ", ".join(sorted(self.types))
                    raise UnknownDriverError(
                        f"no installed driver type {name!r} (installed: {known})"
                    )
                found = self._runners[name] = kind.runner(self._setup)
            return found


def in_threads(
    run: Callable[..., DriverResult],
    calls: Sequence[DriverCall],
    *,
    parallelism: int,
    cancel: CancelSignal | None,
    on_done: Callable[[int, DriverResult], None] | None = None,
) -> list[DriverResult]:
    """`run(call, cancel=cancel)` for every call, `parallelism` threads at once, in order."""

    def one(index: int) -> DriverResult:
        result = run(calls[index], cancel=cancel)
        if on_done is not None:
            on_done(index, result)
        return result

    with ThreadPoolExecutor(max(1, parallelism)) as pool:
        return list(pool.map(one, range(len(calls))))
