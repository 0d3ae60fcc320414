"""Request heads against a real `gitopsd serve`, on raw sockets (the review after issue 17):
a header the request rules read given twice with different values, or a body framed both by
Content-Length and by chunks, is 400; a head over 16 KiB is 400; HTTP/1.0 probes without
`Host` are answered; and an answer sent before the body was read says `Connection: close`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

DRIFT = "/api/v1/environments/dev/drift"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module (open mode, loopback)."""
    world = World(tmp_path_factory.mktemp("heads"))
    world.control()
    world.commit(layered())
    daemon = DaemonProcess(world).start("--poll-interval", "1h")
    yield daemon
    daemon.stop()


def exchange(
    served: DaemonProcess, head: str, body: bytes = b"", *, until_closed: bool = False
) -> tuple[int, str, bool]:
    """Send `head` (lines without the final blank one) and `body`; the status, the response
    head, and (`until_closed`) whether the server then closed the connection cleanly."""
    client = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    with client:
        client.sendall(head.replace("{port}", str(served.port)).encode() + b"\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
        response_head = received.partition(b"\r\n\r\n")[0].decode("latin-1")
        status = int(response_head.split(" ", 2)[1])
        closed = until_closed and _closed_after(client)
    return status, response_head.lower(), closed


def _closed_after(client: socket.socket) -> bool:
    try:
        while client.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return False
    return True


def post(host: str = "127.0.0.1:{port}", *extra: str) -> str:
    lines = [f"POST {DRIFT} HTTP/1.1", f"Host: {host}", *extra]
    return "".join(line + "\r\n" for line in lines)


JSON = "Content-Type: application/json"


@pytest.mark.parametrize(
    "extra",
    [
        ("Host: evil.example", JSON, "Content-Length: 0"),
        (
            JSON,
            "Origin: http://127.0.0.1:{port}",
            "Origin: http://evil.example",
            "Content-Length: 0",
        ),
        (JSON, "Sec-Fetch-Site: same-origin", "Sec-Fetch-Site: cross-site", "Content-Length: 0"),
        (JSON, "Content-Type: text/plain", "Content-Length: 0"),
    ],
    ids=["host", "origin", "sec-fetch-site", "content-type"],
)
def test_a_rule_header_given_twice_differently_is_400(
    served: DaemonProcess, extra: tuple[str, ...]
) -> None:
    status, _, _ = exchange(served, post("127.0.0.1:{port}", *extra))
    assert status == 400


def test_the_same_header_twice_with_one_value_is_fine(served: DaemonProcess) -> None:
    status, _, _ = exchange(served, post("127.0.0.1:{port}", JSON, JSON, "Content-Length: 0"))
    assert status == 202


def test_both_content_length_and_chunks_is_400_and_closes(served: DaemonProcess) -> None:
    body = b"2\r\n{}\r\n0\r\n\r\n"
    head = post("127.0.0.1:{port}", JSON, "Content-Length: 2", "Transfer-Encoding: chunked")
    status, response_head, closed = exchange(served, head, body, until_closed=True)
    assert status == 400
    assert "connection: close" in response_head
    assert closed


def test_a_head_over_16_kib_is_400(served: DaemonProcess) -> None:
    big = "X-Filler: " + "a" * 20_000
    status, _, _ = exchange(
        served, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\n{big}\r\n"
    )
    assert status == 400
    small = "X-Filler: " + "a" * 10_000
    status, _, _ = exchange(
        served, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\n{small}\r\n"
    )
    assert status == 200


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_an_http_1_0_probe_without_host_is_answered(served: DaemonProcess, path: str) -> None:
    status, _, _ = exchange(served, f"GET {path} HTTP/1.0\r\n")
    assert status == 200


def test_the_api_still_wants_a_host(served: DaemonProcess) -> None:
    status, _, _ = exchange(served, "GET /api/v1/environments HTTP/1.0\r\n")
    assert status == 421


def test_a_refusal_before_a_large_body_closes_without_a_reset(served: DaemonProcess) -> None:
    body = b"{" + b" " * 900_000 + b"}"
    head = post("127.0.0.1:{port}", "Content-Type: text/plain", f"Content-Length: {len(body)}")
    status, response_head, closed = exchange(served, head, body, until_closed=True)
    assert status == 415
    assert "connection: close" in response_head
    assert closed  # an end of stream, not a reset


def test_a_large_body_read_keeps_the_connection(served: DaemonProcess) -> None:
    body = b"{" + b" " * 900_000 + b"}"
    head = post("127.0.0.1:{port}", JSON, f"Content-Length: {len(body)}")
    status, response_head, _ = exchange(served, head, body)
    assert status == 202
    assert "connection: close" not in response_head


@pytest.mark.parametrize(
    "head",
    [
        post("127.0.0.1:{port}", "Host: evil.example", JSON, "Content-Length: 0"),
        post("127.0.0.1:{port}", JSON, "Content-Length: -1"),
        "GET /healthz HTTP/1.1 extra\r\nHost: 127.0.0.1:{port}\r\n",
        post("127.0.0.1:{port}", "a header without a colon"),
    ],
    ids=["two-hosts", "negative-length", "request-line", "header-line"],
)
def test_a_head_the_http_parser_refuses_is_answered_in_json(
    served: DaemonProcess, head: str
) -> None:
    """Every error the API answers is JSON, also those of the HTTP parser itself (it
    answered `Invalid HTTP request received.` as text/plain)."""
    client = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    with client:
        client.sendall(head.replace("{port}", str(served.port)).encode() + b"\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    response_head, _, body = received.partition(b"\r\n\r\n")
    lines = response_head.decode("latin-1").lower().split("\r\n")
    assert lines[0].startswith("http/1.1 400 ")
    assert "content-type: application/json" in lines
    assert "invalid HTTP request" in json.loads(body)["error"]
