"""Retention: runs, their steps (with the drivers' output) and events do not pile up forever.

The daemon prunes on a schedule (`Daemon.start` adds the job, every `Policy.interval`); a pass
deletes, in each environment, the finished runs older than `max_age` or beyond its newest
`max_runs`, and the events older than `max_age` or beyond its newest `max_events`. Each
batch is one store call that deletes at most `batch` rows in a short transaction of its own,
so a long backlog costs many small writes that runs and the API slip between, never one long
lock; a pass stops after `max_batches` and the next one goes on.

What promotion and rollback need is kept whatever its age:
- the revisions an environment verified (rollback targets, what its followers may take) are
  its holds, rows of their own that no pruning here touches (their number is bounded where
  they are written, runtime.records.promotion_records); none is derived from runs any more
  (the migration that moved holds into rows derived those of older records once), so runs
  can go without taking a verified revision with them;
- current component states, approvals, open requests, saved plans and drift reports are
  other records (drift reports are files, already capped), none of them pruned here;
- unfinished runs are never pruned (a restart resumes them from their steps);
- events the outbox has not delivered yet (after its cursor) stay until it has.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from gitopsd.engine.ports import Clock, StateStore
from gitopsd.runtime.notifications import outbox

log = logging.getLogger(__name__)

DAY = 86400.0
EVERYTHING = 2**62  # an event id no store reaches: no outbox ever delivered anything


@dataclass(frozen=True)
class Policy:
    """How much history to keep; the defaults are the documented ones."""

    max_age: float = 90 * DAY  # seconds
    max_runs: int = 1000  # per environment
    max_events: int = 100_000  # per environment
    interval: float = 300.0  # seconds between passes
    batch: int = 500  # rows deleted per statement
    max_batches: int = 200  # per kind and environment in one pass


@dataclass
class Pruned:
    """What one pass deleted: the rows of each batch (runs with their steps; events)."""

    runs: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.runs) + sum(self.events)


class Retention:
    """Prunes `store` by `policy`; `prune` is the scheduled job."""

    def __init__(self, store: StateStore, *, clock: Clock, policy: Policy) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy

    def prune(self) -> Pruned:
        """One pass over every environment with history; returns what it deleted."""
        policy, pruned = self.policy, Pruned()
        cutoff = self.clock.now() - timedelta(seconds=policy.max_age)
        delivered = self.store.get_cursor(outbox.CURSOR)
        up_to = EVERYTHING if delivered is None else delivered
        for scope in sorted(self.store.history_scopes(), key=lambda name: name or ""):
            if scope is not None:
                runs = functools.partial(
                    self.store.prune_runs,
                    scope,
                    created_before=cutoff,
                    keep=policy.max_runs,
                    limit=policy.batch,
                )
                pruned.runs += self._batches(runs)
            events = functools.partial(
                self.store.prune_events,
                scope,
                before=cutoff,
                keep=policy.max_events,
                up_to=up_to,
                limit=policy.batch,
            )
            pruned.events += self._batches(events)
        if pruned.total:
            log.info(
                "retention deleted %d rows of runs and steps and %d events",
                sum(pruned.runs),
                sum(pruned.events),
            )
        return pruned

    def scheduled(self) -> None:
        """The daemon's job: a pass (what it deleted is logged)."""
        self.prune()

    def _batches(self, batch: Callable[[], int]) -> list[int]:
        """`batch` again until it deletes nothing or `max_batches` ran; each one's count."""
        counts: list[int] = []
        while len(counts) < self.policy.max_batches:
            deleted = batch()
            if not deleted:
                break
            counts.append(deleted)
        return counts
