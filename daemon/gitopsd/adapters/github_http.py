"""Sending one GitHub REST request: retries, rate limits, the circuit breaker and the errors.

Pipeline: execute -> github-actions driver / commit statuses -> `github_api` -> here -> GitHub.
`Retrier.send` makes a request until its answer is final, deciding from the answer alone:

- 2xx and 3xx, and 4xx other than rate limits, are final; `raise_for_answer` turns a 4xx into
  a `GitHubRequestError` quoting GitHub's `message` (401 bad credentials, 404 no such
  repository or workflow or no access, 422 validation, plain 403 missing permission);
- 403 or 429 rate limits wait what GitHub's "Rate limits for the REST API" page says: the
  `retry-after` seconds; else, when `x-ratelimit-remaining` is 0, until `x-ratelimit-reset`
  (UTC epoch seconds); else (a secondary limit without headers) one minute, doubling;
- 5xx answers and connection errors back off exponentially with full jitter
  (`engine.retrying`) and count towards a circuit breaker (`engine.breaker`) shared by every
  request of a client: once it is open, requests fail at once instead of piling onto an API
  that is down, until its delay has passed. A request that is not idempotent (a workflow
  dispatch) is not tried again after one: GitHub may have taken it (`again_after_outage`).

A request gives up (`GitHubUnavailableError`) when its next wait would end after its deadline.
A request made for a driver call also carries the call's `Stop`: its waits look at it every
`Stop.check_every` seconds and give up (`GitHubStoppedError`) as soon as the call is cancelled
or out of time, instead of sleeping out a minute-long rate limit or a 150 s retry series while
the workflow run goes on. Requests without a `Stop` (commit statuses, and the driver's own
cancel of a run) wait as before. Every wait goes through the injected `Waits`, so tests run in
milliseconds. The token is never part of a message: `scrub` removes it from anything that
leaves this module.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gitopsd.engine.breaker import CircuitBreaker
from gitopsd.engine.retrying import Uniform, delay_before
from gitopsd.errors import GitHubError, GitHubRequestError, GitHubUnavailableError
from gitopsd.model.manifests import RetryPolicy

log = logging.getLogger(__name__)
SECONDARY_LIMIT_WAIT = 60.0  # "wait for at least one minute before retrying"
RESET_MARGIN = 1.0  # seconds after x-ratelimit-reset, so the first request is not early
_HINTS = {
    401: "bad credentials: the token is missing, expired or revoked",
    403: "forbidden: the token lacks a permission (dispatching needs Actions: write)",
    404: "not found: no such repository, workflow, run or artifact, or the token cannot see it",
    410: "gone: the artifact expired",
    422: "rejected by GitHub's validation",
}


# not in gitopsd.errors: a signal that the caller gave up waiting, neither kind of failure
class GitHubStoppedError(GitHubError):
    """The caller's `Stop` ended a request's wait; `reason` is "cancelled" or "timed_out"."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _never() -> bool:
    return False


def _forever() -> float:
    return math.inf


@dataclass(frozen=True)
class Stop:
    """When the caller no longer wants an answer: it was cancelled, or it has no time left.

    Both are asked of the caller, so its clock (not the client's) decides; a driver call passes
    its cancel signal and the seconds to its deadline. A wait looks every `check_every` seconds
    and never sleeps past the time left.
    """

    cancelled: Callable[[], bool] = _never
    time_left: Callable[[], float] = _forever
    check_every: float = 0.25

    def __post_init__(self) -> None:
        if not self.check_every > 0:
            raise ValueError(f"Stop.check_every must be above 0 seconds, got {self.check_every}")

    def reason(self) -> str | None:
        """ "cancelled", "timed_out", or None while the caller still wants the answer."""
        if self.cancelled():
            return "cancelled"
        return "timed_out" if self.time_left() <= 0 else None


@dataclass(frozen=True)
class Waits:
    """Time as the client sees it; tests pass fakes."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time  # for x-ratelimit-reset (epoch seconds)
    uniform: Uniform = random.uniform
    deadline: float = 150.0  # seconds one request may spend retrying (a secondary limit: 60)
    backoff: float = 1.0  # first retry waits up to this long (full jitter)
    max_backoff: float = 30.0


@dataclass
class Retrier:
    """Sends requests until their answer is final; one per client (it owns the breaker)."""

    waits: Waits = field(default_factory=Waits)
    breaker: CircuitBreaker = field(
        default_factory=lambda: CircuitBreaker(threshold=5, base_delay=5.0, max_delay=300.0)
    )
    secret: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # `delay_before` reads only the backoff bounds; attempts are bounded by the deadline
        self._policy = RetryPolicy(
            attempts=100, backoff=self.waits.backoff, max_backoff=self.waits.max_backoff
        )

    def send(
        self,
        what: str,
        request: Callable[[], httpx.Response],
        *,
        stop: Stop | None = None,
        again_after_outage: bool = True,
    ) -> httpx.Response:
        """The first final answer to `request()`; `what` names it in errors ("GET /repos/...").
        With a `stop`, the waits between tries end as soon as it says so. Without
        `again_after_outage`, a 5xx or a connection error is not tried again but raised
        (`GitHubUnavailableError`): GitHub may have taken a request it did not answer, and a
        request that is not idempotent (a dispatch) must not be sent twice blindly."""
        self._refuse_while_open(what)
        started = self.waits.monotonic()
        outages = secondary = 0
        while True:
            response, failure = self._try(request)
            if response is not None and _rate_limited(response):
                delay, reason = self._rate_limit_wait(response, secondary)
                secondary += reason.startswith("secondary")
            elif failure is not None or (response is not None and response.status_code >= 500):
                outages += 1
                delay = self._outage_wait(outages)
                reason = failure or self.scrub(_describe(response))
                if not again_after_outage:
                    raise GitHubUnavailableError(f"GitHub API {what}: {reason}; not sent again")
            else:
                with self._lock:
                    self.breaker.succeeded()
                assert response is not None
                return response
            self._pause(what, reason, delay=delay, started=started, stop=stop)

    def scrub(self, text: str) -> str:
        return text.replace(self.secret, "***") if len(self.secret) >= 4 else text

    def _try(
        self, request: Callable[[], httpx.Response]
    ) -> tuple[httpx.Response | None, str | None]:
        try:
            return request(), None
        except httpx.TransportError as error:  # connection refused, reset, timeouts, DNS
            return None, f"{type(error).__name__}: {self.scrub(str(error)) or 'no answer'}"

    def _outage_wait(self, outages: int) -> float:
        backoff = delay_before(outages + 1, self._policy, uniform=self.waits.uniform)
        with self._lock:
            opened = self.breaker.failed(self.waits.monotonic(), uniform=self.waits.uniform)
        return max(backoff, opened)

    def _rate_limit_wait(self, response: httpx.Response, secondary: int) -> tuple[float, str]:
        """How long GitHub asks to wait; `secondary`: secondary limits hit before (doubling)."""
        headers = response.headers
        retry_after = _number(headers.get("retry-after"))
        if retry_after is not None:
            return (
                retry_after,
                f"rate limited ({response.status_code}, retry-after {retry_after:g}s)",
            )
        reset = _number(headers.get("x-ratelimit-reset"))
        if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            wait = max(0.0, reset - self.waits.wall_clock()) + RESET_MARGIN
            return wait, f"rate limit used up ({response.status_code}) until {_utc_time(reset)}"
        wait = SECONDARY_LIMIT_WAIT * 2 ** min(secondary, 10)
        message = self.scrub(_message_of(response))
        return wait, f"secondary rate limit ({response.status_code}): {message}"

    def _pause(
        self, what: str, reason: str, *, delay: float, started: float, stop: Stop | None
    ) -> None:
        spent = self.waits.monotonic() - started
        if spent + delay > self.waits.deadline:
            raise GitHubUnavailableError(
                f"GitHub API {what}: {reason}; gave up after {spent:.1f}s "
                f"(the next try would be in {delay:.1f}s, past the {self.waits.deadline:g}s "
                "deadline)"
            )
        log.warning("GitHub API %s: %s; trying again in %.1fs", what, reason, delay)
        if stop is None:
            self.waits.sleep(delay)
        else:
            self._sleep_unless_stopped(what, reason, delay=delay, stop=stop)

    def _sleep_unless_stopped(self, what: str, reason: str, *, delay: float, stop: Stop) -> None:
        """Sleep `delay` in slices of `stop.check_every`, never past the caller's time left;
        raise `GitHubStoppedError` once `stop` says so (also just before the next try)."""
        end = self.waits.monotonic() + delay
        while True:
            why = stop.reason()
            if why is not None:
                raise GitHubStoppedError(
                    f"GitHub API {what}: {reason}; stopped waiting to try again: "
                    f"{why.replace('_', ' ')}",
                    reason=why,
                )
            left = end - self.waits.monotonic()
            if left <= 0:
                return
            self.waits.sleep(min(left, stop.check_every, stop.time_left()))

    def _refuse_while_open(self, what: str) -> None:
        now = self.waits.monotonic()
        with self._lock:
            if self.breaker.allows(now):
                return
            failures, wait = self.breaker.failures, self.breaker.retry_at - now
        raise GitHubUnavailableError(
            f"GitHub API {what}: not tried, the circuit breaker is open after {failures} "
            f"failures in a row; the next request goes out in {wait:.1f}s"
        )


def raise_for_answer(what: str, response: httpx.Response, *, scrub: Callable[[str], str]) -> None:
    """Raise `GitHubRequestError` for a 4xx answer, quoting GitHub's message and a hint."""
    status = response.status_code
    if status < 400:
        return
    message = scrub(_message_of(response))
    hint = _HINTS.get(status, "")
    text = f"GitHub API {what}: {status} {message}" + (f" ({hint})" if hint else "")
    raise GitHubRequestError(text, status=status, github_message=message)


def _rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    headers = response.headers
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in _message_of(response).lower()
    )


def _message_of(response: httpx.Response) -> str:
    """GitHub's `message`, with the `errors` details a 422 adds; else the start of the body."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:200]
    message = str(body.get("message") or response.reason_phrase)
    details = [_detail(item) for item in body.get("errors") or [] if _detail(item)]
    return f"{message}: {'; '.join(details)}" if details else message


def _detail(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("message") or item.get("code") or "")
    return str(item)


def _describe(response: httpx.Response | None) -> str:
    if response is None:
        return "no answer"
    return f"{response.status_code} {_message_of(response)}"


def _number(value: str | None) -> float | None:
    """A header's number of seconds (or epoch seconds); None unless it is one: `nan` would
    make every wait and deadline comparison false (a wait that never ends), a negative or
    infinite one is no time to wait for either."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _utc_time(epoch: float) -> str:
    """`epoch` as a UTC time of day, or as it came where no calendar reaches it."""
    try:
        return time.strftime("%H:%M:%S", time.gmtime(epoch)) + " UTC"
    except (OverflowError, OSError, ValueError):
        return f"{epoch:g} (epoch seconds)"
