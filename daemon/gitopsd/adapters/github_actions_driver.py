"""Run a component's `github-actions` driver: dispatch a workflow and follow the run it starts.

Pipeline: execute -> `ports.DriverRunner` -> this -> GitHub's REST API (`github_api`). A call:

1. reads the token from the variable the driver names (`token_env`), else fails at once;
2. dispatches the workflow on the driver's `ref` with the rendered inputs plus environment,
   component, action, revision and a fresh `correlation_id` (`github_protocol`), which
   begins with the key of the run's step the call is a try of (`ports.StepTry`); before that,
   a retry or a resumed step first ends the runs an earlier try of the step left going
   (`github_following`: found by that key, cancelled, waited for until completed);
3. finds the run it started: its id from the dispatch answer when GitHub returns it, else the
   run of that workflow, created since just before the dispatch, whose `run-name` (GitHub's
   `display_title`) contains the correlation id; it gives up after `find_timeout`;
4. follows the run with backoff (`poll_initial` doubling to `poll_max`) until `completed`;
   `success` is exit 0 (or the `gitopsd-result` artifact's exit code and outputs), any other
   conclusion a failure naming the run's URL;
5. on the call's timeout or a cancel, asks GitHub to cancel the run and reports
   timed_out/cancelled, like the command driver.

Steps 2 to 5 are `github_following.Following`; this module prepares the call (token, inputs,
one client per API URL and token) and redacts what comes back. The output is a short log
(dispatched, run URL, status changes, conclusion), capped and redacted like the command
driver's, with the token among the secrets; errors are redacted too.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from gitopsd.adapters import github_protocol
from gitopsd.adapters.driver_output import redact_text, secret_values
from gitopsd.adapters.drivers import in_threads
from gitopsd.adapters.github_api import GitHubClient
from gitopsd.adapters.github_following import Following, RunLog, Timing
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, OnStarted
from gitopsd.model.manifests import GitHubActionsDriver

__all__ = ["GitHubActionsRunner", "Timing"]

ClientFactory = Callable[[str, str], GitHubClient]


class GitHubActionsRunner:
    """`ports.DriverRunner` for `type: github-actions` drivers; safe to call from several
    threads. One client (and so one circuit breaker) per API URL and token."""

    def __init__(
        self,
        *,
        base_env: Mapping[str, str] | None = None,
        timing: Timing | None = None,
        client_factory: ClientFactory = GitHubClient,
        max_output: int = 65536,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.base_env = base_env  # None: os.environ as it is at call time
        self.timing = timing or Timing()
        self.max_output = max_output
        self._client_factory = client_factory
        self._new_id = new_id
        self._clients: dict[tuple[str, str], GitHubClient] = {}
        self._lock = threading.Lock()

    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,
    ) -> DriverResult:
        """Dispatch the workflow and follow it; no local process, so `on_started` is unused."""
        started = self.timing.monotonic()
        result, secrets = self._run(call, cancel=cancel, started=started)
        return replace(
            result,
            error=_redacted(result.error, secrets),
            duration=self.timing.monotonic() - started,
        )

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        """A thread per workflow run being followed: each waits on GitHub, not on the CPU."""
        return in_threads(self.run, calls, parallelism=parallelism, cancel=cancel, on_done=on_done)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _run(
        self, call: DriverCall, *, cancel: CancelSignal | None, started: float
    ) -> tuple[DriverResult, list[bytes]]:
        env = os.environ if self.base_env is None else self.base_env
        secrets = secret_values(env, call)
        driver = call.driver
        if not isinstance(driver, GitHubActionsDriver):
            return DriverResult(None, error="not a github-actions driver call"), secrets
        token = env.get(driver.token_env, "")
        if not token:
            message = (
                f"the github-actions driver of {call.component} needs a GitHub token in the "
                f"environment variable {driver.token_env}, which is not set or empty"
            )
            return DriverResult(None, error=message), secrets
        secrets = sorted({*secrets, token.encode()}, key=len, reverse=True)
        correlation_id = github_protocol.correlation_id(call, self._new_id())
        try:
            inputs = github_protocol.dispatch_inputs(call, correlation_id=correlation_id)
        except ValueError as error:
            return DriverResult(None, error=f"component {call.component}: {error}"), secrets
        follow = Following(
            call=call,
            driver=driver,
            client=self._client(driver.api_url, token),
            timing=self.timing,
            cancel=cancel,
            deadline=started + call.timeout,
            log=RunLog(started=started, clock=self.timing.monotonic),
        )
        result = follow.execute(inputs, correlation_id=correlation_id)
        output = follow.log.text(limit=self.max_output, secrets=secrets)
        return replace(result, output=output), secrets

    def _client(self, api_url: str, token: str) -> GitHubClient:
        with self._lock:
            client = self._clients.get((api_url, token))
            if client is None:
                client = self._clients[(api_url, token)] = self._client_factory(api_url, token)
            return client


def _redacted(text: str | None, secrets: list[bytes]) -> str | None:
    if text is None:
        return None
    return redact_text(text, secrets)
