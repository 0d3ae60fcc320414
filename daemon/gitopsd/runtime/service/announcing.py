"""The daemon's outbox, assembled: audit events -> announcements -> statuses and notifications.

Pipeline: run -> audit trail -> outbox -> **announce** -> commit statuses, notifications.
`Announcing` builds the outbox with one subscriber, the `Announcer`, which turns each event
into an announcement (`engine.announcements`, with the event's run looked up for its
revision) and tells each listener in turn: the commit-status poster when GitHub is
configured, and the notifier. `Delivery` holds the daemon settings they need.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gitopsd.adapters import webhook_post
from gitopsd.engine import announcements
from gitopsd.engine.announcements import Announcement
from gitopsd.engine.ports import StateStore
from gitopsd.engine.recording import Recorder
from gitopsd.model.manifests import Notification
from gitopsd.model.state import Event
from gitopsd.runtime.notifications.commit_statuses import CommitStatuses, CommitStatusPoster
from gitopsd.runtime.notifications.notifying import Notifier, Post
from gitopsd.runtime.notifications.outbox import Outbox, Stopping
from gitopsd.runtime.service.settings import DaemonSettings

log = logging.getLogger(__name__)

Listener = Callable[[Announcement], None]
RUN_EVENTS = frozenset({"run.started", "run.finished"})
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Delivery:
    """Where announcements go, from the daemon's settings (runtime.service.settings)."""

    public_url: str = DEFAULT_PUBLIC_URL  # base of the run links in statuses and bodies
    github_repository: str | None = None  # owner/repo whose commits get statuses
    commit_statuses: CommitStatuses | None = None  # the GitHub client, when configured
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    post: Post = webhook_post.post_json
    interval: float = 1.0  # seconds between the outbox's looks, when nobody wakes it


GitHubFactory = Callable[[str, str], CommitStatuses]  # (api_url, token) -> a client


def delivery_from(settings: DaemonSettings, *, github: GitHubFactory | None) -> Delivery:
    """The daemon's `Delivery`: commit statuses when a repository and a token are set (and
    `github` makes the client), run links under the public URL."""
    return Delivery(
        public_url=settings.resolved_public_url(),
        github_repository=settings.github_repository,
        commit_statuses=_github_client(settings, github),
    )


def _github_client(settings: DaemonSettings, github: GitHubFactory | None) -> CommitStatuses | None:
    if settings.github_repository is None:
        return None
    if settings.github_token is None:
        log.warning(
            "no commit statuses on %s: GITOPSD_GITHUB_TOKEN is not set",
            settings.github_repository,
        )
        return None
    if github is None:
        log.warning("no commit statuses: this gitopsd has no GitHub client")
        return None
    log.info("setting commit statuses on %s", settings.github_repository)
    return github(settings.github_api_url, settings.github_token.get_secret_value())


class Announcer:
    """An outbox subscriber: announces each event that means something, to every listener."""

    def __init__(self, store: StateStore, listeners: Sequence[Listener]) -> None:
        self._store = store
        self._listeners = list(listeners)

    def __call__(self, event: Event) -> None:
        run = None
        if event.run_id is not None and event.kind in RUN_EVENTS:
            run = self._store.get_run(event.run_id)
        found = announcements.announce(event, run)
        if found is None:
            return
        for listener in self._listeners:
            try:
                listener(found)
            except Stopping:
                raise
            except Exception:  # the next listener still hears of it
                log.exception("announcing %s of event %s failed", found.kind, event.id)


class Announcing:
    """The outbox and its listeners, for one daemon."""

    def __init__(
        self,
        store: StateStore,
        metrics: Recorder,
        delivery: Delivery,
        *,
        notifications: Callable[[], Sequence[Notification]],
    ) -> None:
        stopping = threading.Event()
        self.notifier = Notifier(
            notifications=notifications,
            environ=delivery.environ,
            post=delivery.post,
            public_url=delivery.public_url,
            count=metrics.notification_sent,
            stopping=stopping,
        )
        listeners: list[Listener] = [self.notifier]
        statuses = _commit_statuses(delivery, metrics)
        if statuses is not None:
            listeners.insert(0, statuses)
        announcer = Announcer(store, listeners)
        self.outbox = Outbox(store, [announcer], interval=delivery.interval, stopping=stopping)
        self._metrics, self._notifications = metrics, notifications
        self._statuses = statuses is not None

    def check(self) -> None:
        """As a term starts: warn of every disabled notification, and start the delivery
        counters at 0 so that the alerts on them see even the first failure."""
        self.notifier.check()
        names = [notification.name for notification in self._notifications()]
        self._metrics.expect_deliveries(names, commit_statuses=self._statuses)


def _commit_statuses(delivery: Delivery, metrics: Recorder) -> CommitStatusPoster | None:
    if delivery.commit_statuses is None or delivery.github_repository is None:
        return None
    return CommitStatusPoster(
        delivery.commit_statuses,
        repository=delivery.github_repository,
        public_url=delivery.public_url,
        count=metrics.commit_status_set,
    )
