"""GET /api/v1/runs/{id}/logs over the real app: events while the run goes (framed so that any
line break arrives as one), `Last-Event-ID` honoured, plain text after the run or on request,
and the daemon asked in the threadpool, never on the event loop."""

from __future__ import annotations

import pytest

from gitopsd.errors import StoreBusyError
from gitopsd.runtime.control import RunLogs
from tests.api.conftest import TestClient
from tests.api.fake_control import FakeControl
from tests.server_events import events

PIECES = ["==> apply net\n", "one\r\ntwo\rthree\n", "==> apply app\nlast"]


class Unfolding(FakeControl):
    """`run-3` runs; its output grows by one of `PIECES` at each read, then the run ends."""

    def __init__(self) -> None:
        super().__init__()
        self.running = {"id": "run-3", "environment": "dev", "status": "running", "steps": []}
        self.stored_runs.append(self.running)
        self.to_come = list(PIECES)
        self.busy_at: int | None = None  # the store is busy once, with so many pieces to come

    def run_logs(self, run_id: str, *, offset: int = 0) -> RunLogs | None:
        if run_id == "run-3" and self.busy_at == len(self.to_come):
            self.busy_at = None
            raise StoreBusyError("the state store is busy")
        if run_id == "run-3" and self.to_come:
            self.logs["run-3"] = self.logs.get("run-3", "") + self.to_come.pop(0)
        elif run_id == "run-3":
            self.running["status"] = "succeeded"
        return super().run_logs(run_id, offset=offset)


@pytest.fixture
def fake() -> Unfolding:
    return Unfolding()


def read_stream(client: TestClient, **headers: str) -> list[tuple[str, str, str]]:
    headers = {"Accept": "text/event-stream", **headers}
    with client.stream("GET", "/api/v1/runs/run-3/logs", headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["cache-control"] == "no-cache"
        return list(events(answer.iter_lines()))


def test_a_running_run_streams_its_output_then_ends(client: TestClient, fake: FakeControl) -> None:
    received = read_stream(client)
    whole = "".join(PIECES)
    offsets = [str(len("".join(PIECES[: n + 1]))) for n in range(3)]
    assert received == [
        (offsets[0], "output", PIECES[0]),
        (offsets[1], "output", "one\ntwo\nthree\n"),  # CR and CRLF would end SSE lines too
        (offsets[2], "output", PIECES[2]),
        (str(len(whole)), "end", "finished"),
    ]
    asked = fake.calls_to("run_logs")
    assert [call.kwargs["offset"] for call in asked] == [0, *map(int, offsets)]
    assert not any(call.on_event_loop for call in asked)


def test_a_reconnect_resumes_after_its_last_event_id(client: TestClient, fake: FakeControl) -> None:
    received = read_stream(client, **{"Last-Event-ID": "5"})
    assert received[0] == (str(len(PIECES[0])), "output", "pply net\n")
    assert fake.calls_to("run_logs")[0].kwargs["offset"] == 5


def test_plain_text_when_asked_for_it_or_once_the_run_has_ended(
    client: TestClient, fake: FakeControl
) -> None:
    running = client.get("/api/v1/runs/run-3/logs", headers={"Accept": "text/plain"})
    assert running.status_code == 200 and running.text == PIECES[0]
    assert running.headers["content-type"].startswith("text/plain")
    ended = client.get("/api/v1/runs/run-1/logs", headers={"Accept": "text/event-stream"})
    assert ended.headers["content-type"].startswith("text/plain")
    assert ended.text == fake.logs["run-1"]


def test_a_stream_reconnecting_after_the_run_ended_gets_the_rest_and_the_end(
    client: TestClient, fake: FakeControl
) -> None:
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "14"}
    with client.stream("GET", "/api/v1/runs/run-1/logs", headers=headers) as answer:
        received = list(events(answer.iter_lines()))
    length = str(len(fake.logs["run-1"]))
    assert received == [(length, "output", "created vpc-1\n"), (length, "end", "finished")]


def test_an_unknown_run_is_404(client: TestClient) -> None:
    answer = client.get("/api/v1/runs/no-such-run/logs")
    assert answer.status_code == 404
    assert answer.json() == {"error": "unknown run 'no-such-run'"}


def test_a_store_busy_for_a_moment_does_not_end_the_stream(
    client: TestClient, fake: Unfolding
) -> None:
    fake.busy_at = 1
    received = read_stream(client)
    assert "".join(data for _, kind, data in received if kind == "output") == "".join(
        PIECES
    ).replace("\r\n", "\n").replace("\r", "\n")
    assert received[-1][1] == "end"
