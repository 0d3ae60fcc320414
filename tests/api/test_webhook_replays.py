"""Webhook replays (issue 17 item 4): a delivery GitHub names again (`X-GitHub-Delivery`) within
a day is answered 200 and does nothing; the signature is checked first; a delivery that was
not acted on may come again; ids are forgotten after a day and past the newest 10,000."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from gitopsd.api import webhooks
from gitopsd.api.deliveries import RecentDeliveries
from tests.api.conftest import MakeClient, TestClient
from tests.api.fake_control import FakeControl
from tests.daemon.conftest import FakeClock

SECRET = b"webhook-secret"
URL = "/api/v1/webhooks/github"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()
ID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 1, 12, tzinfo=UTC))


@pytest.fixture
def hooked(make_client: MakeClient, clock: FakeClock) -> TestClient:
    return make_client(webhook_secret=SECRET, clock=clock)


def deliver(
    client: TestClient, delivery: str | None, body: bytes = PUSH, *, signed: bool = True
) -> tuple[int, dict[str, object]]:
    headers = {webhooks.EVENT_HEADER: "push"}
    if signed:
        headers[webhooks.SIGNATURE_HEADER] = webhooks.sign(SECRET, body)
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    response = client.post(URL, content=body, headers=headers)
    return response.status_code, response.json()


def test_a_replay_within_a_day_is_200_and_fetches_nothing(
    hooked: TestClient, fake: FakeControl, clock: FakeClock
) -> None:
    assert deliver(hooked, ID) == (202, {"accepted": True})
    clock.current += timedelta(hours=23, minutes=59)
    assert deliver(hooked, ID) == (200, {"status": "duplicate", "delivery": ID})
    assert len(fake.calls_to("request_fetch")) == 1


def test_the_signature_is_checked_before_the_delivery_id(
    hooked: TestClient, fake: FakeControl
) -> None:
    assert deliver(hooked, ID)[0] == 202
    error = {"error": f"missing or wrong {webhooks.SIGNATURE_HEADER} signature"}
    assert deliver(hooked, ID, signed=False) == (401, error)
    assert len(fake.calls_to("request_fetch")) == 1


def test_after_a_day_the_same_id_acts_again(
    hooked: TestClient, fake: FakeControl, clock: FakeClock
) -> None:
    assert deliver(hooked, ID)[0] == 202
    clock.current += timedelta(days=1, seconds=1)
    assert deliver(hooked, ID)[0] == 202
    assert len(fake.calls_to("request_fetch")) == 2


def test_other_ids_and_deliveries_without_one_act(hooked: TestClient, fake: FakeControl) -> None:
    for delivery in (ID, "another-id", None, None):
        assert deliver(hooked, delivery)[0] == 202
    assert len(fake.calls_to("request_fetch")) == 4


def test_a_delivery_that_was_refused_may_come_again(hooked: TestClient, fake: FakeControl) -> None:
    assert deliver(hooked, ID, b'{"ref": 7}')[0] == 422
    assert deliver(hooked, ID)[0] == 202  # GitHub's redelivery, once the cause is fixed
    assert len(fake.calls_to("request_fetch")) == 1


def test_only_the_newest_ids_are_kept(clock: FakeClock) -> None:
    recent = RecentDeliveries(clock, capacity=3)
    assert [recent.claim(d) for d in ("a", "b", "c", "d")] == [True] * 4
    assert [recent.claim(d) for d in ("d", "c", "b", "a")] == [False, False, False, True]


@pytest.mark.parametrize("delivery", ["a" * 101, "72d3162e cc78", "../x", "a;b", "id_1"])
def test_a_delivery_id_github_would_not_send_is_400(
    hooked: TestClient, fake: FakeControl, delivery: str
) -> None:
    status, body = deliver(hooked, delivery)
    assert status == 400
    assert body == {
        "error": "X-GitHub-Delivery must be at most 100 letters, digits and dashes "
        "(GitHub sends a UUID)"
    }
    assert fake.calls_to("request_fetch") == []


def test_delivery_ids_are_compared_whatever_their_case(
    hooked: TestClient, fake: FakeControl
) -> None:
    assert deliver(hooked, ID.upper())[0] == 202
    assert deliver(hooked, ID) == (200, {"status": "duplicate", "delivery": ID})
    assert len(fake.calls_to("request_fetch")) == 1


@pytest.mark.parametrize("delivery", [None, "", "  "])
def test_a_delivery_without_an_id_is_acted_on_every_time(
    hooked: TestClient, fake: FakeControl, delivery: str | None
) -> None:
    assert deliver(hooked, delivery)[0] == 202
    assert deliver(hooked, delivery)[0] == 202
    assert len(fake.calls_to("request_fetch")) == 2


def test_copies_of_a_delivery_sent_at_once_act_once(
    hooked: TestClient, fake: FakeControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id is claimed before the fetch is asked for, not noted after it: copies arriving
    while the first one's fetch request is still on its way were acted on as well."""
    asked = fake.request_fetch

    def slow_fetch(reason: str) -> None:
        asked(reason)
        time.sleep(0.2)  # a fetch request that takes a moment to be handed over

    monkeypatch.setattr(fake, "request_fetch", slow_fetch)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: deliver(hooked, ID)[0], range(10)))
    assert sorted(answers) == [200] * 9 + [202]
    assert len(fake.calls_to("request_fetch")) == 1


def test_a_delivery_whose_fetch_request_failed_may_come_again(
    hooked: TestClient, fake: FakeControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = fake.request_fetch

    def failing_fetch(reason: str) -> None:
        asked(reason)
        raise OSError("the queue is gone")

    monkeypatch.setattr(fake, "request_fetch", failing_fetch)
    assert deliver(hooked, ID)[0] == 500
    monkeypatch.setattr(fake, "request_fetch", asked)
    assert deliver(hooked, ID) == (202, {"accepted": True})
    assert len(fake.calls_to("request_fetch")) == 2
