"""Following one dispatched workflow run: find it, poll it, conclude, or cancel it.

Pipeline: execute -> `github_actions_driver` -> here -> `github_api`. A `Following` lives for one
driver call: it ends what an earlier try of the same step left going (a retry, a resume after
gitopsd was killed: `_end_earlier`), dispatches, finds the run (by the id GitHub returned, else by
the correlation id in its `run-name`), polls it with backoff until it completes, reads the
`gitopsd-result` artifact, and on the call's timeout or cancel, or a failure while its run goes on,
asks GitHub to cancel the run. Every wait goes through `Timing`, so tests run in milliseconds.
Cancel and timeout are checked every `wait_slice` seconds of every wait: the driver's own (between
polls) and, through the `Stop` each request carries, a request's retry and rate-limit waits. Either
kind of wait raises `GitHubStoppedError`, and `execute` turns it into asking GitHub to cancel the
run (if it was found) and a cancelled / timed_out result. The clean-up requests (a last look for
the run, the cancel) carry no `Stop`: they must go out although the call is over. While following,
an API that is down only delays the next poll: the run keeps going on GitHub and must not be lost.
What happens is written to a short `RunLog`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gitopsd.adapters import github_protocol
from gitopsd.adapters.command_driver import describe_duration
from gitopsd.adapters.driver_output import redact
from gitopsd.adapters.github_api import (
    GitHubClient,
    GitHubError,
    GitHubStoppedError,
    GitHubUnavailableError,
    Stop,
    WorkflowRun,
)
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, StepTry
from gitopsd.errors import RunNotFoundError
from gitopsd.model.manifests import GitHubActionsDriver


@dataclass(frozen=True)
class Timing:
    """Every wait of the driver, injectable so tests run in milliseconds."""

    find_timeout: float = 120.0  # how long a dispatched run may take to show up in the list
    find_interval: float = 2.0
    poll_initial: float = 2.0  # first wait between polls of the run, doubling ...
    poll_max: float = 30.0  # ... up to this
    created_margin: float = 120.0  # runs created this long before the dispatch still count
    wait_slice: float = 0.25  # how often cancel and timeout are checked while waiting (also
    # during one request's retry and rate-limit waits)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class RunLog:
    """The human log of one call: a line per event, with the seconds since the call began."""

    started: float
    clock: Callable[[], float]
    lines: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.lines.append(f"[{self.clock() - self.started:6.1f}s] {message}")

    def text(self, *, limit: int, secrets: list[bytes]) -> str:
        data = redact("\n".join(self.lines).encode() + b"\n", secrets)
        if len(data) > limit:
            omitted = len(data) - limit
            half = limit // 2
            data = data[:half] + f"\n[... {omitted} bytes omitted ...]\n".encode() + data[-half:]
        return data.decode("utf-8", errors="replace")


@dataclass
class Following:
    """One dispatch, from the request to the run's conclusion (or its cancellation)."""

    call: DriverCall
    driver: GitHubActionsDriver
    client: GitHubClient
    timing: Timing
    cancel: CancelSignal | None
    deadline: float
    log: RunLog
    run_url: str = ""
    cancel_sent: bool = False
    run_id: int | None = None  # once known
    searching: tuple[str, datetime] | None = None  # (correlation id, since) once dispatched
    stop: Stop = field(init=False)  # what every request of the call carries

    def __post_init__(self) -> None:
        # asked on the driver's clock, so the client's own clock does not matter
        self.stop = Stop(
            cancelled=lambda: self.cancel is not None and self.cancel.is_set(),
            time_left=lambda: self.deadline - self.timing.monotonic(),
            check_every=self.timing.wait_slice,
        )

    def execute(self, inputs: dict[str, str], *, correlation_id: str) -> DriverResult:
        try:
            return self._dispatch_and_follow(inputs, correlation_id=correlation_id)
        except GitHubStoppedError as stopped:
            self.log(f"stopped: {stopped}")  # names the request whose wait was cut short, if any
            return self._stopped(stopped.reason)
        except GitHubError as error:
            self.log(f"failed: {error}")
            if self.run_id is None and self.searching is None:  # nothing was dispatched
                return DriverResult(None, error=str(error))
            # the step fails, and is then retried, rolled back or left failed: the run it
            # started must not go on applying beside whatever runs next
            return DriverResult(None, error=f"{error}; {self._cancel_left()}")

    def _dispatch_and_follow(self, inputs: dict[str, str], *, correlation_id: str) -> DriverResult:
        if self.call.step is not None and self.call.step.earlier:
            self._end_earlier(self.call.step)
        since = self.timing.now() - timedelta(seconds=self.timing.created_margin)
        self.run_id = self._dispatch(inputs, correlation_id=correlation_id, since=since)
        if self.run_id is None:
            self.searching = (correlation_id, since)
            self.run_id = self._find(correlation_id, since=since)
        self.log(f"run {self.run_id}: {self.run_url or '(no URL yet)'}")
        return self._follow(self.run_id)

    def _dispatch(
        self, inputs: dict[str, str], *, correlation_id: str, since: datetime
    ) -> int | None:
        """Dispatch the workflow once: the run's id if known (GitHub's answer, or the run a
        dispatch it did not answer started), None if it must be looked for. A dispatch
        answered with a 5xx or not at all may have been taken: its run is looked for by
        the correlation id (as long as a run takes to show up) before it is sent again, so
        the workflow never runs twice for one call."""
        repository, workflow = self.driver.repository, self.driver.workflow
        while True:
            try:
                dispatched = self.client.dispatch_workflow(
                    repository, workflow, ref=self.driver.ref, inputs=inputs, stop=self.stop
                )
                break
            except GitHubUnavailableError as error:
                self.log(
                    f"dispatch unanswered, looking for its run before sending it again: {error}"
                )
                self.searching = (correlation_id, since)
                found = self._search(correlation_id, since=since)
                if found is not None:
                    self.log(f"dispatched {workflow} of {repository}: GitHub took it after all")
                    return found
        self.log(
            f"dispatched {workflow} of {repository} on {self.driver.ref} "
            f"(action {self.call.action}, correlation id {correlation_id})"
        )
        self.run_url = dispatched.html_url or ""
        return dispatched.workflow_run_id

    # --- finding the run -------------------------------------------------------------------

    def _find(self, correlation_id: str, *, since: datetime) -> int:
        """The run's id; `GitHubStoppedError` if the call stops first."""
        found = self._search(correlation_id, since=since)
        if found is None:
            raise RunNotFoundError(self._never_found(correlation_id))
        return found

    def _search(self, correlation_id: str, *, since: datetime) -> int | None:
        """The run's id, looked for as long as a dispatched run takes to show up (None: it
        did not); `GitHubStoppedError` if the call stops first."""
        give_up = self.timing.monotonic() + self.timing.find_timeout
        while True:
            run = self._look_up(correlation_id, since=since, stop=self.stop)
            if run is not None:
                self.run_url = run.html_url or self.run_url
                return run.id
            if self.timing.monotonic() >= give_up:
                return None
            self._wait(min(self.timing.find_interval, give_up - self.timing.monotonic()))

    def _look_up(
        self, correlation_id: str, *, since: datetime, stop: Stop | None
    ) -> WorkflowRun | None:
        runs = self._dispatched_since(
            since,
            stop=stop,
            looking_for="the run",
            wanted=lambda run: _carries(run, correlation_id),
            first_only=True,
        )
        return runs[0] if runs else None

    def _dispatched_since(
        self,
        since: datetime,
        *,
        stop: Stop | None,
        looking_for: str,
        wanted: Callable[[WorkflowRun], bool],
        first_only: bool = False,
    ) -> list[WorkflowRun] | None:
        """The workflow's dispatched runs created since `since` that are `wanted`, read page
        by page (only up to the first one when `first_only`); None (logged) when GitHub
        could not say."""
        found: list[WorkflowRun] = []
        runs = self.client.workflow_runs(
            self.driver.repository,
            self.driver.workflow,
            event="workflow_dispatch",
            created_since=since,
            stop=stop,
        )
        try:
            for run in runs:
                if wanted(run):
                    found.append(run)
                    if first_only:
                        break
        except GitHubUnavailableError as error:
            self.log(f"GitHub API unavailable while looking for {looking_for}: {error}")
            return None
        return found

    def _late_look_up(self) -> int | None:
        """Stopped while looking for the run: one last look, so a run that did start is
        cancelled rather than left running."""
        if self.searching is None:
            return None
        correlation_id, since = self.searching
        try:
            run = self._look_up(correlation_id, since=since, stop=None)
        except GitHubError as error:
            self.log(f"could not look for the run to cancel it: {error}")
            return None
        if run is None:
            return None
        self.run_url = run.html_url or self.run_url
        return run.id

    def _never_found(self, correlation_id: str) -> str:
        waited = describe_duration(self.timing.find_timeout)
        return (
            f"workflow run never found: {self.driver.workflow} of {self.driver.repository} was "
            f"dispatched with correlation_id {correlation_id}, but no run whose name contains it "
            f"appeared within {waited}; the workflow must set "
            "`run-name: ... ${{ inputs.correlation_id }}` (see docs/github-actions.md)"
        )

    # --- an earlier try's run ----------------------------------------------------------------

    def _end_earlier(self, step: StepTry) -> None:
        """Before a retry or a resumed step dispatches again: cancel each run an earlier try
        of the step left going (a gitopsd killed while following it, a cancel GitHub did not
        take), and wait until GitHub says it completed, so the runs of one component's
        driver never overlap. GitHub unreachable meanwhile is no answer: looked at again
        until the call's timeout or a cancel (`GitHubStoppedError`)."""
        since = step.since - timedelta(seconds=self.timing.created_margin)
        asked: set[int] = set()
        interval = self.timing.find_interval
        while True:
            going = self._earlier_runs(step.key, since)
            if going is not None and not going:
                return
            for run in going or ():
                if run.id not in asked:
                    self.log(f"run {run.id} of an earlier try of this step is still {run.status}")
                    if self._ask_cancel(run.id):  # else (refused, unreachable) asked again
                        asked.add(run.id)
            self._wait(interval)
            interval = min(interval * 2, self.timing.poll_max)

    def _earlier_runs(self, key: str, since: datetime) -> list[WorkflowRun] | None:
        """The step's runs that have not completed; None when GitHub could not say."""
        mark = github_protocol.step_mark(key)
        return self._dispatched_since(
            since,
            stop=self.stop,
            looking_for="earlier runs",
            wanted=lambda run: _carries(run, mark) and run.status != "completed",
        )

    def _ask_cancel(self, run_id: int) -> bool:
        """Ask GitHub to cancel run `run_id`; whether it took the request (False: it had
        completed, or GitHub could not be asked; the caller looks again)."""
        try:
            cancelled = self.client.cancel_run(self.driver.repository, run_id)
        except GitHubError as error:
            self.log(f"could not cancel run {run_id}: {error}")
            return False
        self.log(f"cancel requested for run {run_id}" if cancelled else f"run {run_id} had ended")
        return cancelled

    # --- following it ----------------------------------------------------------------------

    def _follow(self, run_id: int) -> DriverResult:
        interval, status = self.timing.poll_initial, ""
        while True:
            run = self._poll(run_id)
            if run is not None and run.status == "completed":
                self.run_url = run.html_url or self.run_url
                return self._conclude(run)
            if run is not None and run.status != status:
                status = run.status or ""
                self.log(f"status: {status}")
            self._wait(interval)
            interval = min(interval * 2, self.timing.poll_max)

    def _poll(self, run_id: int) -> WorkflowRun | None:
        try:
            return self.client.get_run(self.driver.repository, run_id, stop=self.stop)
        except GitHubUnavailableError as error:  # the run goes on; so does following it
            self.log(f"GitHub API unavailable, still following: {error}")
            return None

    def _conclude(self, run: WorkflowRun) -> DriverResult:
        conclusion = run.conclusion or "unknown"
        self.log(f"completed: {conclusion}")
        if conclusion != "success":
            return DriverResult(
                None, error=f"workflow run {run.id} concluded {conclusion}: {self.run_url}"
            )
        try:
            found = self._result(run.id)
        except GitHubStoppedError:
            raise
        except (github_protocol.ResultError, GitHubError) as error:
            self.log(f"result artifact unusable: {error}")
            return DriverResult(None, error=str(error))
        if found is None:
            outputs = {"conclusion": conclusion, "run_id": run.id, "run_url": self.run_url}
            return DriverResult(0, outputs=outputs if self.call.action == "apply" else None)
        exit_code, outputs = found
        self.log(f"{github_protocol.RESULT_ARTIFACT}: exit code {exit_code}")
        is_apply_output = self.call.action == "apply" and exit_code == 0
        return DriverResult(exit_code, outputs=outputs if is_apply_output else None)

    def _result(self, run_id: int) -> tuple[int, dict[str, object]] | None:
        name = github_protocol.RESULT_ARTIFACT
        artifacts = [
            artifact
            for artifact in self.client.list_run_artifacts(
                self.driver.repository, run_id, name=name, stop=self.stop
            )
            if artifact.name == name
        ]
        if not artifacts:
            return None
        usable = [artifact for artifact in artifacts if not artifact.expired]
        if not usable:
            raise github_protocol.ResultError(f"{name} artifact of run {run_id} has expired")
        limit = github_protocol.MAX_RESULT_ZIP
        if usable[0].size_in_bytes > limit:
            raise github_protocol.ResultError(f"{name} artifact: larger than {limit} bytes")
        archive = self.client.download_artifact(
            self.driver.repository, usable[0].id, max_bytes=limit, stop=self.stop
        )
        return github_protocol.parse_result(archive)

    # --- stopping ---------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        """Sleep up to `seconds`; `GitHubStoppedError` as soon as the call must stop."""
        end = min(self.timing.monotonic() + seconds, self.deadline)
        while True:
            stop = self.stop.reason()
            if stop is not None:
                raise GitHubStoppedError(stop.replace("_", " "), reason=stop)
            left = end - self.timing.monotonic()
            if left <= 0:
                return
            self.timing.sleep(min(self.timing.wait_slice, left))

    def _stopped(self, stop: str) -> DriverResult:
        aftermath = self._cancel_left()
        if stop == "cancelled":
            return DriverResult(None, cancelled=True, error=f"cancelled; {aftermath}")
        limit = describe_duration(self.call.timeout)
        return DriverResult(None, timed_out=True, error=f"timed out after {limit}; {aftermath}")

    def _cancel_left(self) -> str:
        """The call ends before its run did: ask GitHub to cancel the run (found by one last
        look if it was still being looked for); what came of it, in words."""
        run_id = self.run_id if self.run_id is not None else self._late_look_up()
        if run_id is not None:
            self._request_cancel(run_id)
        if self.cancel_sent:
            return f"asked GitHub to cancel workflow run {self.run_url}".rstrip()
        return "the workflow run was not cancelled (it was not found or not reachable)"

    def _request_cancel(self, run_id: int) -> None:
        self.cancel_sent = self._ask_cancel(run_id)


def _carries(run: WorkflowRun, correlation_id: str) -> bool:
    return correlation_id in run.display_title or correlation_id in (run.name or "")
