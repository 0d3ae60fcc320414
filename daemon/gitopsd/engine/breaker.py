"""A circuit breaker with exponential backoff, for fetching a remote that keeps failing.

Pipeline: git -> load. The daemon fetches a remote repository every poll interval and on
every webhook. When the remote is down, hammering it helps nobody and floods the log: after
`threshold` failures in a row the breaker opens, and fetches are refused until a backoff
delay has passed (doubling with each further failure, capped, with jitter so a fleet of
daemons does not retry in step). The first fetch allowed after the delay is a trial
(half-open); its success closes the breaker, its failure opens it again for longer.

Pure: time comes in as arguments (monotonic seconds) and randomness as a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gitopsd.engine.retrying import Uniform


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    threshold: int = 3
    base_delay: float = 1.0
    max_delay: float = 300.0
    failures: int = 0
    retry_at: float = 0.0

    def state(self, now: float) -> BreakerState:
        if self.failures < self.threshold:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self.retry_at else BreakerState.HALF_OPEN

    def allows(self, now: float) -> bool:
        """Whether a fetch may be tried now."""
        return self.state(now) is not BreakerState.OPEN

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    def failed(self, now: float, *, uniform: Uniform) -> float:
        """Count a failure; return the seconds until the next fetch is allowed (0: now)."""
        self.failures += 1
        if self.failures < self.threshold:
            return 0.0
        delay = self.delay(self.failures - self.threshold)
        # jitter in the upper half: spread out, but never much earlier than the backoff says
        wait = uniform(delay / 2, delay)
        self.retry_at = now + wait
        return wait

    def delay(self, openings: int) -> float:
        """The backoff ceiling after the breaker opened `openings + 1` times in a row."""
        return float(min(self.max_delay, self.base_delay * 2 ** min(openings, 32)))
