"""The outbox in a running daemon: commit statuses in event order, notifications delivered to a
real receiver, a slow receiver that never holds a run up, and `gitopsd serve` reading the
webhook URL from its environment without ever logging it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping

import pytest

from gitopsd.runtime.service.announcing import Delivery
from gitopsd.runtime.service.daemon import Daemon
from tests.daemon.conftest import InProcess, StartDaemon, eventually, status
from tests.daemon.harness import metric
from tests.github.fake_github import FakeGitHub
from tests.runtime.receiver import Receiver, serving
from tests.runtime.statuses import RecordingStatuses
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

PUBLIC = "https://gitopsd.example.com"
SECRET = "s3cr3t-token"  # in the receiver's URL path


def settings(*notifications: Mapping[str, object]) -> str:
    return json.dumps(
        {"apiVersion": "gitopsd.io/v1", "kind": "Settings", "notifications": list(notifications)}
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as served:
        yield served


def delivery(receiver: Receiver, statuses: RecordingStatuses | None = None) -> Delivery:
    return Delivery(
        public_url=PUBLIC,
        github_repository="octo-org/infra",
        commit_statuses=statuses,
        environ={"HOOK_URL": receiver.url},
        interval=0.1,
    )


def last_run_id(daemon: Daemon) -> str:
    return daemon.workspace.store.list_runs("dev", limit=1)[0].id


def test_a_verified_apply_posts_pending_then_success_and_notifies(
    started: InProcess, receiver: Receiver
) -> None:
    statuses = RecordingStatuses()
    files = layered(**{"gitopsd.yaml": settings({"name": "ops", "url_env": "HOOK_URL"})})
    daemon, _, _, _ = started(files, delivery=delivery(receiver, statuses))
    eventually(lambda: len(statuses.posted) == 2, "two commit statuses")
    head = daemon.workspace.source.head()
    run_url = f"{PUBLIC}/api/v1/runs/{last_run_id(daemon)}"
    assert statuses.states() == [("gitopsd/dev", "pending"), ("gitopsd/dev", "success")]
    assert {(p.repository, p.sha, p.target_url) for p in statuses.posted} == {
        ("octo-org/infra", head, run_url)
    }
    eventually(lambda: len(receiver.received) == 1, "the notification")
    [body] = receiver.bodies()
    assert (body["event"], body["environment"], body["revision"]) == (
        "environment_verified",
        "dev",
        head,
    )
    assert body["run_url"] == run_url
    # the receiver answers before the outbox counts the delivery: wait for the count
    eventually(
        lambda: notified(daemon) == 1, "the notification counted in gitopsd_notifications_total"
    )
    text = daemon.metrics()[0].decode()
    assert metric(text, "gitopsd_commit_statuses_total", result="success") == 2


def notified(daemon: Daemon) -> float:
    text = daemon.metrics()[0].decode()
    return metric(text, "gitopsd_notifications_total", notification="ops", result="success")


def test_a_failed_apply_posts_pending_then_failure(started: InProcess, receiver: Receiver) -> None:
    statuses = RecordingStatuses()
    files = layered(
        **{"gitopsd.yaml": settings({"name": "ops", "url_env": "HOOK_URL", "format": "slack"})}
    )
    daemon, _, _, _ = started(
        files, delivery=delivery(receiver, statuses), control={"fail": {"dns:apply": -1}}
    )
    eventually(lambda: status(daemon, "dev") == "failed", "the failed apply")
    eventually(lambda: len(statuses.posted) == 2, "two commit statuses")
    assert statuses.states() == [("gitopsd/dev", "pending"), ("gitopsd/dev", "failure")]
    assert statuses.posted[1].description.startswith("failed in dev: dns")
    eventually(lambda: len(receiver.received) == 1, "the Slack notification")
    assert receiver.bodies()[0]["text"].startswith("dev: apply of ")


def test_a_slow_receiver_never_holds_a_run_up(started: InProcess, receiver: Receiver) -> None:
    receiver.hold = threading.Event()  # answers nothing until released
    notification = {
        "name": "slow",
        "url_env": "HOOK_URL",
        "events": ["run_started", "environment_verified"],
        "timeout": "30s",
    }
    files = layered(**{"gitopsd.yaml": settings(notification)})
    daemon, _, _, _ = started(files, delivery=delivery(receiver))
    eventually(lambda: len(receiver.received) == 1, "run_started to reach the receiver")
    eventually(lambda: status(daemon, "dev") == "verified", "the run, while the receiver hangs")
    assert receiver.answered == []  # still holding the first notification
    receiver.hold.set()
    eventually(lambda: len(receiver.received) == 2, "the second notification")
    assert [body["event"] for body in receiver.bodies()] == ["run_started", "environment_verified"]


def test_serve_reads_the_url_from_its_environment_and_never_logs_it(
    world: World, daemon: StartDaemon, receiver: Receiver
) -> None:
    receiver.script = [500]  # one failure first: its warning must not show the URL either
    notifications = settings(
        {"name": "ops", "url_env": "HOOK_URL", "retry": {"attempts": 2, "backoff": "1s"}},
        {"name": "pager", "url_env": "PAGER_URL"},  # not set: disabled with a warning
    )
    world.commit({**layered(), "gitopsd.yaml": notifications})
    served = daemon("--poll-interval", "1h", "--log-format", "json", HOOK_URL=receiver.url)
    served.wait_for(lambda: len(receiver.received) == 2, what="the notification, retried")
    assert receiver.bodies()[1]["event"] == "environment_verified"
    logs = served.logs()
    assert SECRET not in logs and receiver.url not in logs
    assert "notification pager is disabled: the environment variable PAGER_URL is not set" in logs
    assert "notification ops: HTTP 500 Internal Server Error; try 2 of 2" in logs
    served.wait_for(
        lambda: metric(
            served.get("/metrics").text, "gitopsd_notifications_total",
            notification="ops", result="success",
        ) == 1,
        what="the delivery to be counted",
    )  # fmt: skip


def test_serve_sets_commit_statuses_on_github_in_order(
    world: World, daemon: StartDaemon, fake_github: FakeGitHub
) -> None:
    """The whole path: `gitopsd serve` configured by its environment, the real GitHub client,
    GitHub's statuses endpoint (here the fake's, with GitHub's shapes and auth checks)."""
    head = world.commit(layered())
    served = daemon(
        "--poll-interval",
        "1h",
        "--log-format",
        "json",
        GITOPSD_GITHUB_REPOSITORY="octo-org/infra",
        GITOPSD_GITHUB_TOKEN=fake_github.token,
        GITOPSD_GITHUB_API_URL=fake_github.url,
        GITOPSD_PUBLIC_URL=PUBLIC,
    )
    served.wait_for(lambda: len(fake_github.statuses) == 2, what="two commit statuses")
    run_id = served.get("/api/v1/runs").json()["runs"][0]["id"]
    assert [(s["sha"], s["context"], s["state"]) for s in fake_github.statuses] == [
        (head, "gitopsd/dev", "pending"),
        (head, "gitopsd/dev", "success"),
    ]
    assert {s["target_url"] for s in fake_github.statuses} == {f"{PUBLIC}/api/v1/runs/{run_id}"}
    assert fake_github.token not in served.logs()
