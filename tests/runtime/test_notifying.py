"""Notifications delivered to a real local HTTP receiver: both bodies, retries with backoff,
giving up (counted), the receiver's Retry-After, filters, disabled ones, and the URL kept
secret in every log line."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import gitopsd
from gitopsd.adapters import webhook_post
from gitopsd.engine.announcements import Announcement
from gitopsd.model.manifests import Notification
from gitopsd.runtime.notifications.notifying import Notifier
from gitopsd.runtime.notifications.outbox import Stopping
from tests.runtime.receiver import Receiver, serving

SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
FAILED = Announcement(
    kind="run_failed", event_id=7, at=datetime(2026, 12, 1, 12, 30, tzinfo=UTC),
    environment="dev", message="apply failed", actor="gitopsd", revision=SHA,
    run_id="run-1", action="apply", error="failed: dns",
)  # fmt: skip
SECRET = "s3cr3t-token"  # in the receiver's URL path, as in a Slack webhook URL


class Stops(threading.Event):
    """The stop flag, recording every backoff instead of sleeping it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


class Setup:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.notifications: list[Notification] = []
        self.environ = {"HOOK_URL": receiver.url}
        self.counted: list[tuple[str, str]] = []
        self.stops = Stops()
        self.ceilings: list[float] = []

    def notification(self, **fields: Any) -> Notification:
        made = Notification.model_validate({"name": "chat", "url_env": "HOOK_URL", **fields})
        self.notifications.append(made)
        return made

    def notifier(self) -> Notifier:
        def uniform(low: float, high: float) -> float:
            self.ceilings.append(high)
            return high / 2

        return Notifier(
            notifications=lambda: self.notifications,
            environ=self.environ,
            post=webhook_post.post_json,
            public_url="http://gitopsd.test:8080",
            count=lambda name, result: self.counted.append((name, result)),
            stopping=self.stops,
            uniform=uniform,
        )


@pytest.fixture
def setup(caplog: pytest.LogCaptureFixture) -> Iterator[Setup]:
    caplog.set_level(logging.DEBUG, logger="gitopsd")
    with serving() as receiver:
        yield Setup(receiver)
    # whatever happened, gitopsd never logged the URL (httpx's own request lines are kept
    # out of the daemon's log by logs.configure; see tests/daemon/test_announcing_live.py)
    ours = [r.getMessage() for r in caplog.get_records("call") if r.name.startswith("gitopsd")]
    assert ours and not [line for line in ours if SECRET in line]


def test_the_json_body_is_posted_to_the_url_from_the_environment(setup: Setup) -> None:
    setup.notification(format="json")
    setup.notifier()(FAILED)
    [received] = setup.receiver.received
    assert received.path.endswith(SECRET)
    assert received.user_agent == f"gitopsd/{gitopsd.__version__}"
    assert received.body["event"] == "run_failed"
    assert received.body["run_url"] == "http://gitopsd.test:8080/api/v1/runs/run-1"
    assert (received.body["notification"], received.body["id"]) == ("chat", 7)
    assert setup.counted == [("chat", "success")]


def test_the_slack_body_is_posted_in_the_slack_format(setup: Setup) -> None:
    setup.notification(format="slack")
    setup.notifier()(FAILED)
    [body] = setup.receiver.bodies()
    assert body["text"] == "dev: apply of 1a2b3c4d5e6f failed: dns"
    assert [block["type"] for block in body["blocks"]] == ["section", "context"]


def test_a_500_is_retried_after_a_jittered_backoff_then_delivered(setup: Setup) -> None:
    setup.receiver.script = [500, 503]
    setup.notification(retry={"attempts": 3, "backoff": "2s", "max_backoff": "1m"})
    setup.notifier()(FAILED)
    assert setup.receiver.answered == [500, 503, 200]
    assert len(setup.receiver.bodies()) == 3 and len({str(b) for b in setup.receiver.bodies()}) == 1
    assert setup.ceilings == [2.0, 4.0]  # exponential: the full-jitter draws' ceilings
    assert setup.stops.waits == [1.0, 2.0]  # what the draws gave
    assert setup.counted == [("chat", "success")]


def test_it_gives_up_after_its_attempts_and_counts_one_failure(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.receiver.script = [500] * 5
    setup.notification(retry={"attempts": 3, "backoff": "1s"})
    setup.notifier()(FAILED)
    assert setup.receiver.answered == [500, 500, 500]
    assert setup.counted == [("chat", "failure")]
    assert "notification chat of run_failed in dev failed after 3 tries: HTTP 500" in caplog.text


def test_a_client_error_is_not_retried(setup: Setup) -> None:
    setup.receiver.script = [404]
    setup.notification(retry={"attempts": 5})
    setup.notifier()(FAILED)
    assert setup.receiver.answered == [404]
    assert setup.counted == [("chat", "failure")]


def test_a_rate_limited_delivery_waits_as_long_as_the_receiver_asks_within_max_backoff(
    setup: Setup,
) -> None:
    setup.receiver.script = [429, 429]
    setup.receiver.retry_after = "45"
    setup.notification(retry={"attempts": 3, "backoff": "1s", "max_backoff": "30s"})
    setup.notifier()(FAILED)
    assert setup.stops.waits == [30.0, 30.0]  # asked 45 s; capped at max_backoff
    assert setup.counted == [("chat", "success")]


def test_a_receiver_that_does_not_answer_in_time_is_retried(setup: Setup) -> None:
    setup.receiver.hold = threading.Event()  # answers only when released
    setup.notification(timeout=0.3, retry={"attempts": 2, "backoff": "0s", "max_backoff": "0s"})
    setup.notifier()(FAILED)
    setup.receiver.hold.set()
    assert setup.counted == [("chat", "failure")]
    assert len(setup.receiver.received) == 2


def test_nothing_listening_is_a_failure_without_the_url(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    setup.environ["HOOK_URL"] = f"http://127.0.0.1:{port}/hooks/{SECRET}"
    setup.notification(retry={"attempts": 2, "backoff": "0s", "max_backoff": "0s"})
    setup.notifier()(FAILED)
    assert setup.counted == [("chat", "failure")]
    assert "ConnectError" in caplog.text


def test_only_the_events_and_environments_asked_for_are_delivered(setup: Setup) -> None:
    setup.notification(name="prod-only", environments=["prod"])
    setup.notification(name="verified-only", events=["environment_verified"])
    setup.notification(name="dev-failures", environments=["dev"], events=["run_failed"])
    setup.notifier()(FAILED)
    assert [body["notification"] for body in setup.receiver.bodies()] == ["dev-failures"]


def test_an_unset_or_bad_variable_disables_the_notification_with_one_warning(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.notification(name="unset", url_env="NOT_SET_ANYWHERE")
    setup.notification(name="bad", url_env="BAD_URL")
    setup.environ["BAD_URL"] = f"hooks.example.com/{SECRET}"
    notifier = setup.notifier()
    notifier.check()
    notifier(FAILED)
    notifier(FAILED)
    assert setup.receiver.received == [] and setup.counted == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "notification unset is disabled: the environment variable NOT_SET_ANYWHERE is not set",
        "notification bad is disabled: the environment variable BAD_URL is not an http(s) URL",
    ]


def test_the_url_is_read_once_a_later_change_of_the_environment_is_not_seen(
    setup: Setup,
) -> None:
    setup.notification()
    notifier = setup.notifier()
    setup.environ["HOOK_URL"] = "http://127.0.0.1:9/elsewhere"
    notifier(FAILED)
    assert len(setup.receiver.received) == 1


def test_a_stopping_daemon_cuts_the_backoff_short_to_deliver_after_restart(setup: Setup) -> None:
    setup.receiver.script = [500]
    setup.notification(retry={"attempts": 5})
    setup.stops.set()
    with pytest.raises(Stopping):
        setup.notifier()(FAILED)
    assert setup.receiver.answered == [500]  # the first try happens; no more while stopping
    assert setup.counted == []  # neither delivered nor given up: it comes again


def test_an_invalid_url_fails_at_once_without_showing_it(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.environ["HOOK_URL"] = f"http://127.0.0.1:port/{SECRET}"
    setup.notification(retry={"attempts": 5})
    setup.notifier()(FAILED)
    assert setup.counted == [("chat", "failure")] and setup.stops.waits == []
    assert "failed after 1 try: invalid URL: Invalid port" in caplog.text


def test_redact_cuts_the_url_and_its_path_and_query_out() -> None:
    url = f"https://hooks.example.com/services/{SECRET}?key=k3y"
    text = f"failed for url '{url}' at /services/{SECRET}?key=k3y"
    assert webhook_post.redact(text, url) == "failed for url '[redacted]' at [redacted]"
