"""Route each driver call to the runner of its driver type.

Pipeline: execute -> `ports.DriverRunner`. The run engine holds one runner; components may use
different driver types, so this router hands a call with a `workflow` (a github-actions driver)
to the GitHub runner and every other call (`argv`) to the command runner.

The GitHub runner is made on the first call that needs it: it imports httpx, which costs a
command that never dispatches a workflow about 0.2 s of start-up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, DriverRunner, OnStarted


class DriverRouter:
    """`ports.DriverRunner` over one runner per driver type."""

    def __init__(
        self, *, command: DriverRunner, github_actions: Callable[[], DriverRunner]
    ) -> None:
        self.command = command
        self._make_github_actions = github_actions
        self._github_actions: DriverRunner | None = None
        self._lock = threading.Lock()

    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,
    ) -> DriverResult:
        runner = self.command if call.workflow is None else self.github_actions()
        return runner.run(call, cancel=cancel, on_started=on_started)

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        """All command calls go to the command runner's own `run_many`; a mix (or GitHub
        workflows) runs a call per thread, so `parallelism` holds across driver types."""
        if all(call.workflow is None for call in calls):
            return self.command.run_many(
                calls, parallelism=parallelism, cancel=cancel, on_done=on_done
            )
        return in_threads(self.run, calls, parallelism=parallelism, cancel=cancel, on_done=on_done)

    def github_actions(self) -> DriverRunner:
        with self._lock:
            if self._github_actions is None:
                self._github_actions = self._make_github_actions()
            return self._github_actions


def in_threads(
    run: Callable[..., DriverResult],
    calls: Sequence[DriverCall],
    *,
    parallelism: int,
    cancel: CancelSignal | None,
    on_done: Callable[[int, DriverResult], None] | None = None,
) -> list[DriverResult]:
    """`run(call, cancel=cancel)` for every call, `parallelism` threads at once, in order.

    `concurrent.futures` is imported here, by the calls that need a pool: command calls run in
    the command runner's lanes, and importing it cost every drift check's start 3 ms."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> DriverResult:
        result = run(calls[index], cancel=cancel)
        if on_done is not None:
            on_done(index, result)
        return result

    with ThreadPoolExecutor(max(1, parallelism)) as pool:
        return list(pool.map(one, range(len(calls))))
