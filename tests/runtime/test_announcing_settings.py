"""The daemon settings of announcements: run links under the public URL, commit statuses
only with a repository, a token and a GitHub client, and delivery counters that start at 0."""

from __future__ import annotations

import logging
import socket

import pytest
from pydantic import ValidationError

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.metrics import Metrics
from gitopsd.model.manifests import Notification
from gitopsd.runtime.service import announcing
from gitopsd.runtime.service.settings import DaemonSettings
from tests.daemon.harness import metric
from tests.runtime.statuses import RecordingStatuses


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PUBLIC_URL", "GITHUB_REPOSITORY", "GITHUB_TOKEN", "GITHUB_API_URL", "LISTEN"):
        monkeypatch.delenv(f"GITOPSD_{name}", raising=False)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"listen": "[::1]:9000"}, "http://[::1]:9000"),
        ({"listen": "0.0.0.0:80"}, f"http://{socket.gethostname()}:80"),
        ({"public_url": "https://gitopsd.example.com/"}, "https://gitopsd.example.com"),
    ],
)
def test_the_public_url_is_given_or_derived_from_listen(
    options: dict[str, str], expected: str
) -> None:
    assert DaemonSettings(**options).resolved_public_url() == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("github_repository", "octo-org"),
        ("github_repository", "https://github.com/octo-org/infra"),
        ("public_url", "gitopsd.example.com"),
        ("github_api_url", "api.github.com"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        DaemonSettings(**{field: value})  # type: ignore[arg-type]


def test_a_repository_and_a_token_from_the_environment_make_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITOPSD_GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("GITOPSD_GITHUB_API_URL", "https://ghe.example.com/api/v3")
    settings = DaemonSettings(github_repository="octo-org/infra")
    assert "ghp_secret" not in repr(settings)
    made: list[tuple[str, str]] = []
    client = RecordingStatuses()

    def github(api_url: str, token: str) -> RecordingStatuses:
        made.append((api_url, token))
        return client

    delivery = announcing.delivery_from(settings, github=github)
    assert made == [("https://ghe.example.com/api/v3", "ghp_secret")]
    assert (delivery.commit_statuses, delivery.github_repository) == (client, "octo-org/infra")


@pytest.mark.parametrize(
    ("token", "factory", "warning"),
    [
        (None, True, "no commit statuses on octo-org/infra: GITOPSD_GITHUB_TOKEN is not set"),
        ("ghp_secret", False, "no commit statuses: this gitopsd has no GitHub client"),
    ],
)
def test_without_a_token_or_a_client_there_are_no_statuses_and_a_warning_says_why(
    token: str | None,
    factory: bool,
    warning: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if token:
        monkeypatch.setenv("GITOPSD_GITHUB_TOKEN", token)
    settings = DaemonSettings(github_repository="octo-org/infra")
    with caplog.at_level(logging.WARNING, logger="gitopsd"):
        delivery = announcing.delivery_from(
            settings, github=(lambda url, token: RecordingStatuses()) if factory else None
        )
    assert delivery.commit_statuses is None
    assert warning in caplog.text and "ghp_secret" not in caplog.text


def test_no_repository_means_no_statuses_and_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    def never(api_url: str, token: str) -> RecordingStatuses:
        raise AssertionError("no client without a repository")

    delivery = announcing.delivery_from(DaemonSettings(), github=never)
    assert delivery.commit_statuses is None and caplog.text == ""


@pytest.mark.parametrize("statuses", [True, False])
def test_a_starting_term_starts_its_delivery_counters_at_0(
    statuses: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A series born at 1 would hide its first failure from `increase()` in the alerts."""
    metrics = Metrics(version="test", snapshot=list)
    chat = Notification.model_validate({"name": "chat", "url_env": "GITOPSD_TEST_UNSET_URL"})
    delivery = announcing.Delivery(
        github_repository="octo-org/infra" if statuses else None,
        commit_statuses=RecordingStatuses() if statuses else None,
        environ={},
    )
    announced = announcing.Announcing(
        MemoryStore(), metrics, delivery, notifications=lambda: [chat]
    )
    text = metrics.exposition()[0].decode()
    assert (
        metric(text, "gitopsd_notifications_total", notification="chat", result="failure") is None
    )
    announced.check()
    text = metrics.exposition()[0].decode()
    for result in ("success", "failure"):
        assert metric(text, "gitopsd_notifications_total", notification="chat", result=result) == 0
        counted = metric(text, "gitopsd_commit_statuses_total", result=result)
        assert counted == (0 if statuses else None)
    assert "notification chat is disabled" in caplog.text  # the notifier's check still runs
