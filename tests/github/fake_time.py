"""Injected time for the GitHub client and driver: sleeping advances the clocks at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitopsd.adapters.github_api import Waits


@dataclass
class FakeTime:
    now: float = 1000.0  # monotonic seconds
    epoch: float = 1_700_000_000.0  # wall-clock seconds
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.epoch += seconds

    def monotonic(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return self.epoch

    def waits(self, **options: Any) -> Waits:
        """Waits on this fake time; jitter draws the ceiling, so delays are predictable."""
        return Waits(
            sleep=self.sleep,
            monotonic=self.monotonic,
            wall_clock=self.wall_clock,
            uniform=lambda low, high: high,
            **options,
        )
