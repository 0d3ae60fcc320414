"""The metrics recorder port: what the daemon tells its metrics, in plain verbs.

Pipeline: run -> **report**. The runtime says what happened (a run finished, a commit reached
its apply, a fetch failed, a notification went out) and never how it is counted: the
Prometheus counters, histograms and label sets live behind this protocol in
`adapters.metrics`, the one place that imports prometheus_client. A daemon is given a
`MakeRecorder`, since the recorder reads the daemon's state (the store's snapshot, its
readiness) at scrape time, and the daemon is only whole once the recorder exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from gitopsd.model.state import ComponentState, EnvironmentState, Run, Step

Snapshot = Callable[[], Iterable[tuple[EnvironmentState, list[ComponentState]]]]
Lead = Callable[[], int | None]  # the epoch this process leads at; None while it stands by


class Recorder(Protocol):
    """Every metric the daemon records; state gauges are read through the `Snapshot`."""

    def run_finished(self, run: Run, steps: Iterable[Step]) -> None:
        """A run ended: count it, its duration and its driver steps (gates apart); `steps`
        are gone through once, as they come (a run's thousands are read a page at a time)."""
        ...

    def commit_reached_apply(self, environment: str, seconds: float) -> None:
        """A commit's apply starts `seconds` after the daemon first saw the commit."""
        ...

    def promotion_ended(self, environment: str, result: str) -> None:
        """A promotion ended: promoted, failed, or superseded (a pending approval replaced)."""
        ...

    def revision_untrusted(self, environment: str) -> None:
        """A revision was blocked from the environment: its commit is not signed by a trusted
        signer (said once per revision and environment)."""
        ...

    def drift_checked(self, environment: str, result: str) -> None:
        """A drift check of the environment ended with `result` (a drift report's result)."""
        ...

    def fetched(self, result: str) -> None:
        """A fetch of the remote repository ended: success, failure or circuit_open."""
        ...

    def notification_sent(self, notification: str, result: str) -> None:
        """A notification was delivered (success) or given up on after its retries (failure)."""
        ...

    def commit_status_set(self, result: str) -> None:
        """A commit status was set on GitHub (success) or could not be (failure)."""
        ...

    def expect_deliveries(self, notifications: Iterable[str], *, commit_statuses: bool) -> None:
        """Start the delivery counts at 0 for every notification and, if configured, the
        commit statuses, so the first failure shows as an increase."""
        ...

    def follow_lead(self, lead: Lead) -> None:
        """Read whether this process leads from `lead` from now on (runtime.service.leadership)."""
        ...

    def exposition(self) -> tuple[bytes, str]:
        """The metrics as a scrape returns them, and their content type."""
        ...


class MakeRecorder(Protocol):
    """Makes a daemon's recorder, given what it reads at scrape time."""

    def __call__(self, *, snapshot: Snapshot, ready: Callable[[], bool]) -> Recorder: ...
