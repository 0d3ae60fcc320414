"""A recording fake of the GitHub client's `CommitStatuses` protocol."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Posted:
    repository: str
    sha: str
    state: str
    context: str
    description: str
    target_url: str | None


@dataclass
class RecordingStatuses:
    fail: bool = False  # raise instead, as a client that gave up would
    posted: list[Posted] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create_commit_status(
        self,
        repository: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str,
        target_url: str | None,
    ) -> None:
        if self.fail:
            raise RuntimeError("GitHub answered 422 Unprocessable Entity")
        with self._lock:
            self.posted.append(Posted(repository, sha, state, context, description, target_url))

    def states(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(p.context, p.state) for p in self.posted]
