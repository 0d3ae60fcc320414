"""Backoff with full jitter and the attempts limit (every try counts, the first included)."""

from __future__ import annotations

import pytest

from gitopsd.engine.retrying import delay_before, has_tries_left
from gitopsd.model.manifests import RetryPolicy

POLICY = RetryPolicy(attempts=5, backoff=2.0, max_backoff=10.0)


def ceiling(low: float, high: float) -> float:
    return high


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 0.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]
)
def test_the_ceiling_doubles_up_to_max_backoff(attempt: int, expected: float) -> None:
    assert delay_before(attempt, POLICY, uniform=ceiling) == expected


def test_the_delay_is_a_uniform_draw_from_zero() -> None:
    draws: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        draws.append((low, high))
        return (low + high) / 2

    assert delay_before(3, POLICY, uniform=record) == 2.0
    assert draws == [(0.0, 4.0)]


def test_attempts_count_the_first_try() -> None:
    policy = RetryPolicy(attempts=3)
    assert [has_tries_left(n, policy) for n in (1, 2, 3)] == [True, True, False]
    assert not has_tries_left(1, RetryPolicy())
