"""The revision each environment is at, kept loaded while the environment is there.

An environment's next apply rolls back to the revision it is at, so every apply loads that
revision as its rollback target. The revision cache keeps the last few loads only, and on a
busy branch the commits in between push out the revision a slower environment (the end of a
promotion chain) is at: each promotion read it back from disk whole, building a copy of
every component only to swap it for the shared one and drop it. Those
passing copies left the daemon's heap larger after every promotion. Held here, a revision
costs what it does not share with the others: nothing when the environments are at the same
revision.
"""

from __future__ import annotations

import threading

from gitopsd.runtime.runs.revisions import LoadedRevision


class RevisionsAt:
    """The loaded revision of each environment, by environment name."""

    def __init__(self) -> None:
        self._at: dict[str, LoadedRevision] = {}
        self._lock = threading.Lock()

    def find(self, sha: str) -> LoadedRevision | None:
        """The revision `sha` if an environment is at it, else None."""
        with self._lock:
            return next((held for held in self._at.values() if held.revision == sha), None)

    def keep(self, environment: str, loaded: LoadedRevision | None) -> None:
        """Hold `loaded` as the revision `environment` is at (None: none known), letting go
        of the one it was at before."""
        with self._lock:
            if loaded is None:
                self._at.pop(environment, None)
            else:
                self._at[environment] = loaded
