"""Retries of driver calls: exponential backoff with full jitter, as a pure function.

Execution asks `delay_before(attempt)` between tries; randomness comes in as a function so
tests can pin it. Full jitter (a uniform draw between zero and the exponential ceiling)
spreads retries of many components failing together, e.g. when a cloud API throttles.
"""

from __future__ import annotations

from collections.abc import Callable

from gitopsd.model.manifests import RetryPolicy

Uniform = Callable[[float, float], float]


def delay_before(attempt: int, policy: RetryPolicy, *, uniform: Uniform) -> float:
    """Seconds to wait before try number `attempt` (2 for the first retry)."""
    if attempt < 2:
        return 0.0
    ceiling = min(policy.max_backoff, policy.backoff * 2 ** (attempt - 2))
    return uniform(0.0, ceiling)


def has_tries_left(attempt: int, policy: RetryPolicy) -> bool:
    """Whether a try after `attempt` is allowed; `attempts` counts every try, the first too."""
    return attempt < policy.attempts
