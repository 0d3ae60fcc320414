"""Slow clients against a real `gitopsd serve` (issue 17 item 3), on real sockets, with short
bounds: 200 slowloris connections do not stop `/healthz` and `/metrics` and are closed once
their headers are late; a body sent a byte at a time is answered 408 and its connection closed;
past the connection limit a request is answered 503 at once."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess

BOUNDS = {"GITOPSD_HEADER_TIMEOUT": "2", "GITOPSD_BODY_TIMEOUT": "2"}


def connect(served: DaemonProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=5)


def open_slowloris(served: DaemonProcess, count: int) -> list[socket.socket]:
    """Connections that send a request head without ever finishing it."""
    opened = []
    for _ in range(count):
        client = connect(served)
        client.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n".encode())
        opened.append(client)
    return opened


def trickle(clients: list[socket.socket]) -> None:
    """One more header byte on each connection the server has not closed."""
    for client in clients:
        with contextlib.suppress(OSError):  # closed by the server: what the test waits for
            client.send(b"X")


def closed_by_server(clients: list[socket.socket], *, within: float) -> set[socket.socket]:
    """The connections the server closes (end of stream or reset) within `within` seconds,
    trickling a byte to the others every half second meanwhile."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + within
    while len(closed) < len(clients) and time.monotonic() < deadline:
        trickle([c for c in clients if c not in closed])
        readable, _, _ = select.select([c for c in clients if c not in closed], [], [], 0.5)
        for client in readable:
            try:
                data = client.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed.add(client)
    return closed


def timed_get(served: DaemonProcess, path: str) -> float:
    started = time.monotonic()
    assert served.get(path).status_code == 200
    return time.monotonic() - started


@pytest.fixture
def slow_clients() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for client in opened:
        client.close()


def test_slowloris_neither_blocks_health_nor_stays(
    daemon: StartDaemon, slow_clients: list[socket.socket]
) -> None:
    served = daemon("--poll-interval", "1h", **BOUNDS)
    slow_clients.extend(open_slowloris(served, 200))
    trickle(slow_clients)
    assert timed_get(served, "/healthz") < 1
    assert timed_get(served, "/metrics") < 1
    started = time.monotonic()
    closed = closed_by_server(slow_clients, within=6)
    assert len(closed) == 200
    assert time.monotonic() - started >= 0.5  # closed at the bound, not on arrival
    assert timed_get(served, "/healthz") < 1


def test_a_body_at_a_byte_a_second_is_408(daemon: StartDaemon) -> None:
    served = daemon("--poll-interval", "1h", **BOUNDS)
    with connect(served) as client:
        head = (
            "POST /api/v1/environments/dev/runs HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{served.port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n"
        )
        client.sendall(head.encode() + b'{"action": ')
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            assert time.monotonic() - started < 5, f"no answer yet: {answer!r}"
            readable, _, _ = select.select([client], [], [], 0.5)
            if readable:
                answer += client.recv(4096)
            else:
                client.send(b" ")  # a byte every half second
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 408 ")
        assert json.loads(body) == {"error": "the request body did not arrive within 2s"}
        assert closed_by_server([client], within=2) == {client}
    assert served.world.calls("plan") == []


def test_past_the_connection_limit_requests_get_503(
    daemon: StartDaemon, slow_clients: list[socket.socket]
) -> None:
    served = daemon(
        "--poll-interval", "1h", GITOPSD_MAX_CONNECTIONS="20", GITOPSD_HEADER_TIMEOUT="2"
    )
    slow_clients.extend(connect(served) for _ in range(25))  # connected, saying nothing
    time.sleep(0.2)
    assert served.get("/healthz").status_code == 503
    assert len(closed_by_server(slow_clients, within=6)) == 25
    assert served.get("/healthz").status_code == 200
