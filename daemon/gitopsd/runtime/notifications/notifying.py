"""Notifications: announcements posted to the webhooks `gitopsd.yaml` lists.

Pipeline: outbox -> announce -> **notify**. For each announcement, every notification of the
newest valid `gitopsd.yaml` that wants its kind (and environment) gets a body in its format,
posted with a short timeout and retried with exponential backoff and full jitter
(`engine.retrying`, the notification's `retry`). Giving up is logged and counted
(`gitopsd_notifications_total{result="failure"}`); so is each success. All of it happens on
the outbox's thread: a slow or dead receiver delays later notifications, never a run.

The webhook URL is a secret: it comes from the daemon's environment variable the
notification names (read from the environment the daemon started with), and is never
logged. A notification whose variable is unset, or not an http(s) URL, is disabled with one
warning that names the variable.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gitopsd import errors
from gitopsd.engine import notification_bodies, retrying
from gitopsd.engine.announcements import Announcement
from gitopsd.errors import DeliveryError
from gitopsd.model.manifests import Notification
from gitopsd.runtime.notifications.outbox import Stopping

log = logging.getLogger(__name__)

Count = Callable[[str, str], None]  # (notification, result: success or failure)


class Post(Protocol):
    """`webhook_post.post_json`: raises DeliveryError unless the receiver took the body."""

    def __call__(self, url: str, body: dict[str, Any], *, timeout: float) -> None: ...


class Notifier:
    """Listens to announcements; delivers them to the notifications that want them."""

    def __init__(
        self,
        *,
        notifications: Callable[[], Sequence[Notification]],
        environ: Mapping[str, str],
        post: Post,
        public_url: str,
        count: Count,
        stopping: threading.Event,
        uniform: retrying.Uniform = random.uniform,
    ) -> None:
        self._notifications = notifications
        self._environ = dict(environ)  # as the daemon started: a later change is not seen
        self._post = post
        self._public_url = public_url
        self._count = count
        self._stopping = stopping
        self._uniform = uniform
        self._warned: set[tuple[str, str]] = set()

    def check(self) -> None:
        """Warn now about every notification that is disabled (rather than at its first use)."""
        for notification in self._notifications():
            self._url(notification)

    def __call__(self, announcement: Announcement) -> None:
        for notification in self._notifications():
            if not wants(notification, announcement):
                continue
            url = self._url(notification)
            if url is not None:
                self._deliver(notification, url, announcement)

    def _url(self, notification: Notification) -> str | None:
        url = self._environ.get(notification.url_env, "").strip()
        if url.startswith(("http://", "https://")):
            return url
        key = (notification.name, notification.url_env)
        if key not in self._warned:
            self._warned.add(key)
            problem = "is not set" if not url else "is not an http(s) URL"
            log.warning(
                "notification %s is disabled: the environment variable %s %s",
                notification.name,
                notification.url_env,
                problem,
            )
        return None

    def _deliver(self, notification: Notification, url: str, announcement: Announcement) -> None:
        body = notification_bodies.render(
            notification.format,
            announcement,
            notification=notification.name,
            public_url=self._public_url,
        )
        attempt = 1
        while True:
            try:
                self._post(url, body, timeout=notification.timeout)
            except DeliveryError as error:
                if not self._may_retry(notification, attempt, error):
                    self._give_up(notification, announcement, attempt, error)
                    return
                attempt += 1
                self._wait(notification, attempt, error)
                continue
            self._count(notification.name, "success")
            log.debug("notified %s of %s", notification.name, announcement.kind)
            return

    def _may_retry(self, notification: Notification, attempt: int, error: DeliveryError) -> bool:
        return errors.is_temporary(error) and retrying.has_tries_left(attempt, notification.retry)

    def _wait(self, notification: Notification, attempt: int, error: DeliveryError) -> None:
        """Back off before try `attempt`; raise Stopping if the daemon stops meanwhile."""
        policy = notification.retry
        delay = retrying.delay_before(attempt, policy, uniform=self._uniform)
        if error.retry_after is not None:  # the receiver said when; within our own limit
            delay = max(delay, min(error.retry_after, policy.max_backoff))
        log.warning(
            "notification %s: %s; try %d of %d in %.1fs",
            notification.name,
            error,
            attempt,
            policy.attempts,
            delay,
        )
        if self._stopping.wait(delay):
            raise Stopping

    def _give_up(
        self,
        notification: Notification,
        announcement: Announcement,
        attempt: int,
        error: DeliveryError,
    ) -> None:
        self._count(notification.name, "failure")
        log.error(
            "notification %s of %s in %s failed after %d %s: %s",
            notification.name,
            announcement.kind,
            announcement.environment,
            attempt,
            "try" if attempt == 1 else "tries",
            error,
        )


def wants(notification: Notification, announcement: Announcement) -> bool:
    """Whether `notification` asked for this kind of announcement, in this environment."""
    environments = notification.environments
    return announcement.kind in notification.events and (
        environments is None or announcement.environment in environments
    )
