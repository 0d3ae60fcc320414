"""Open event streams cannot starve the daemon: they hold at most a share of its
connections (`api.streams`), so that past it a new stream is refused with the daemon's own
503 while `/healthz`, `/metrics` and the pages still answer; a stream that ends gives its
place back."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import FormClient, write_tokens
from tests.runtime.world import World

CONNECTIONS = 20


@pytest.fixture
def small(world: World) -> Iterator[DaemonProcess]:
    """A daemon that serves at most `CONNECTIONS` connections at once."""
    tokens = write_tokens(world.root)
    daemon = DaemonProcess(
        world,
        data=world.root / "data-streams",
        GITOPSD_TOKENS_FILE=str(tokens),
        GITOPSD_MAX_CONNECTIONS=str(CONNECTIONS),
    )
    daemon.start()
    yield daemon
    daemon.stop()


def open_stream(served: DaemonProcess, cookie: str) -> tuple[socket.socket, bytes]:
    """A `/events` request on its own connection, and the head of its answer."""
    client = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    client.sendall(
        f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        f"Cookie: gitopsd_session={cookie}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(4096)
        if not chunk:
            break
        head += chunk
    return client, head


def test_streams_leave_connections_for_health_metrics_and_pages(small: DaemonProcess) -> None:
    reader = FormClient(small).log_in("carol")
    cookie = reader.http.cookies["gitopsd_session"]
    streams: list[socket.socket] = []
    refused = b""
    try:
        for _ in range(CONNECTIONS):
            client, head = open_stream(small, cookie)
            if not head.startswith(b"HTTP/1.1 200"):
                refused = head
                client.close()
                break
            streams.append(client)
        assert streams, "not even one stream was served"
        assert refused.startswith(b"HTTP/1.1 503"), refused
        again = reader.http.get("/events")
        assert again.status_code == 503
        assert "event streams are open" in again.text
        assert httpx.get(small.url + "/healthz").status_code == 200
        assert httpx.get(small.url + "/metrics").status_code == 200
        assert reader.http.get("/runs").status_code == 200
    finally:
        for client in streams:
            with contextlib.suppress(OSError):
                client.close()
        reader.close()


def test_a_closed_stream_gives_its_place_back(small: DaemonProcess) -> None:
    reader = FormClient(small).log_in("carol")
    cookie = reader.http.cookies["gitopsd_session"]
    opened = [open_stream(small, cookie) for _ in range(CONNECTIONS - 2)]
    assert not all(head.startswith(b"HTTP/1.1 200") for _, head in opened)
    for client, _ in opened:
        client.close()

    def reopened() -> bool:
        client, head = open_stream(small, cookie)
        client.close()
        return head.startswith(b"HTTP/1.1 200")

    small.wait_for(reopened, what="a stream to be served again", timeout=40)
    reader.close()
