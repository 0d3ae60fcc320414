"""Commit statuses `gitopsd/<environment>` on GitHub, so a commit shows where it is deployed.

Pipeline: outbox -> announce -> **commit status**. An apply run's start sets its revision's
status in that environment to pending; its end to success (verified), failure (it failed, or
rolled back) or error (cancelled); `engine.announcements.commit_status` decides which. The
target URL is the run in gitopsd's API. Statuses are set in the order the events happened,
on the outbox's thread, so a run never waits for GitHub; a status GitHub refuses is logged and
counted (`gitopsd_commit_statuses_total{result="failure"}`), never raised into anything.
The GitHub client (which retries rate limits and server errors itself) implements the
`CommitStatuses` protocol; tests use a recording fake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from gitopsd.engine import announcements
from gitopsd.engine.announcements import Announcement
from gitopsd.engine.notification_bodies import run_url

log = logging.getLogger(__name__)

Count = Callable[[str], None]  # result: success or failure


class CommitStatuses(Protocol):
    """GitHub's "create a commit status" (POST /repos/{owner}/{repo}/statuses/{sha})."""

    def create_commit_status(
        self,
        repository: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str,
        target_url: str | None,
    ) -> None: ...


class CommitStatusPoster:
    """Listens to announcements; sets the status an apply run's announcement implies."""

    def __init__(
        self, client: CommitStatuses, *, repository: str, public_url: str, count: Count
    ) -> None:
        self._client = client
        self._repository = repository
        self._public_url = public_url
        self._count = count

    def __call__(self, announcement: Announcement) -> None:
        status = announcements.commit_status(announcement)
        if status is None:
            return
        try:
            self._client.create_commit_status(
                self._repository,
                status.revision,
                state=status.state,
                context=status.context,
                description=status.description,
                target_url=run_url(self._public_url, announcement.run_id),
            )
        except Exception as error:  # whatever GitHub or the network says, a run goes on
            self._count("failure")
            log.warning(
                "could not set %s to %s on %s in %s: %s",
                status.context,
                status.state,
                status.revision[:12],
                self._repository,
                error,
            )
            return
        self._count("success")
        log.debug("set %s to %s on %s", status.context, status.state, status.revision[:12])
