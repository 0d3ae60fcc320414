"""One environment's queue of work: ordered by priority, bursts of commits coalesced.

Pipeline: git/webhook/API/schedule -> **queue** -> worker -> run. Every trigger of the daemon
becomes a `Request` on the queue of the environment it concerns, and one worker per
environment takes them one at a time, so two runs of one environment never overlap.

- Priority: an operator's request (API, CLI through the API) before a commit before a
  scheduled check; first come, first served within a priority.
- Coalescing: a newer commit replaces a queued older one, so 50 quick commits give one run
  for the newest. The replaced requests are handed back to the caller, which records them
  as superseded: skipped, never silently lost. A request already queued absorbs an
  identical one: a scheduled check another check, a commit's request another for the same
  revision (a request picked up again at a restart, then the head seen again).

Pure data: the daemon wraps it in a lock and a condition.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import IntEnum

from gitopsd.model.state import RequestKind


class Priority(IntEnum):
    OPERATOR = 0
    COMMIT = 1
    SCHEDULED = 2


@dataclass(frozen=True)
class Request:
    """Work for one environment. `seen_at` is when the daemon first saw what caused it
    (monotonic seconds), for the commit-to-apply latency."""

    id: str
    environment: str
    priority: Priority
    action: RequestKind  # what the worker does with it (see `RequestKind`)
    revision: str | None = None  # None: the branch head when the worker takes it
    components: tuple[str, ...] | None = None
    actor: str = "gitopsd"
    trigger: str = "commit"
    seen_at: float = 0.0
    plan: str | None = None  # apply exactly this saved plan (checked again when taken)
    forced: bool = False  # an operator's override of a change window (SPEC 3.3)
    remediate: bool = False  # a drift check asked to repair drift (`gitopsd drift --remediate`)


@dataclass
class EnvironmentQueue:
    """The pending requests of one environment."""

    _entries: list[tuple[int, int, Request]] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def put(self, request: Request) -> list[Request]:
        """Queue `request`; return the queued requests it supersedes (or itself, absorbed)."""
        if request.priority is Priority.SCHEDULED and any(
            _same_check(queued, request) for queued in self.pending()
        ):
            return [request]
        superseded = []
        if request.priority is Priority.COMMIT and any(
            _same_commit(queued, request) for queued in self.pending()
        ):
            return [request]
        if request.priority is Priority.COMMIT:
            superseded = [r for r in self.pending() if r.priority is Priority.COMMIT]
            self._entries = [e for e in self._entries if e[2].priority is not Priority.COMMIT]
        self._entries.append((request.priority, next(self._counter), request))
        self._entries.sort(key=lambda entry: entry[:2])
        return superseded

    def pop(self) -> Request | None:
        """The most urgent request, removed from the queue; None when empty."""
        return self._entries.pop(0)[2] if self._entries else None

    def pending(self) -> list[Request]:
        """The queued requests, in the order they will run."""
        return [request for _, _, request in self._entries]

    def __len__(self) -> int:
        return len(self._entries)


def _same_check(queued: Request, new: Request) -> bool:
    return queued.priority is new.priority and queued.action is new.action


def _same_commit(queued: Request, new: Request) -> bool:
    return (
        queued.priority is new.priority
        and queued.action is new.action
        and queued.revision is not None
        and queued.revision == new.revision
    )
