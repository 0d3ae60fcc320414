"""Fetch failures open the breaker with growing, jittered delays; a success closes it."""

from __future__ import annotations

from gitopsd.engine.breaker import BreakerState, CircuitBreaker


def upper(low: float, high: float) -> float:
    return high


def lower(low: float, high: float) -> float:
    return low


def test_the_breaker_stays_closed_below_the_threshold() -> None:
    breaker = CircuitBreaker(threshold=3)
    assert breaker.failed(0.0, uniform=upper) == 0.0
    assert breaker.failed(0.0, uniform=upper) == 0.0
    assert breaker.state(0.0) is BreakerState.CLOSED and breaker.allows(0.0)


def test_it_opens_at_the_threshold_and_half_opens_after_the_delay() -> None:
    breaker = CircuitBreaker(threshold=2, base_delay=10.0)
    breaker.failed(100.0, uniform=upper)
    assert breaker.failed(100.0, uniform=upper) == 10.0
    assert breaker.state(105.0) is BreakerState.OPEN and not breaker.allows(105.0)
    assert breaker.state(110.0) is BreakerState.HALF_OPEN and breaker.allows(110.0)


def test_each_failed_trial_doubles_the_delay_up_to_the_cap() -> None:
    breaker = CircuitBreaker(threshold=1, base_delay=1.0, max_delay=8.0)
    delays = [breaker.failed(0.0, uniform=upper) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_stays_within_the_upper_half_of_the_delay() -> None:
    breaker = CircuitBreaker(threshold=1, base_delay=4.0)
    assert breaker.failed(0.0, uniform=lower) == 2.0
    assert breaker.retry_at == 2.0


def test_a_success_closes_it_and_resets_the_backoff() -> None:
    breaker = CircuitBreaker(threshold=1, base_delay=1.0)
    for _ in range(4):
        breaker.failed(0.0, uniform=upper)
    breaker.succeeded()
    assert breaker.state(0.0) is BreakerState.CLOSED
    assert breaker.failed(0.0, uniform=upper) == 1.0
