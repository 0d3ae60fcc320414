"""A real local webhook receiver (stdlib ThreadingHTTPServer) that records what it is sent.

It answers each POST with the next status of its `script` (200 when the script is used up),
can hold requests until the test releases them (a slow receiver), and records every body,
its path and the User-Agent, in arrival order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: Any
    user_agent: str


@dataclass
class Receiver:
    url: str = ""
    script: list[int] = field(default_factory=list)
    retry_after: str | None = None  # sent with every non-2xx answer
    hold: threading.Event | None = None  # set: answer; unset: wait (up to 20 s)
    received: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        with self._lock:
            return [entry.body for entry in self.received]

    def next_status(self) -> int:
        with self._lock:
            return self.script.pop(0) if self.script else 200


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            with receiver._lock:
                receiver.received.append(
                    Received(self.path, body, self.headers.get("User-Agent", ""))
                )
            if receiver.hold is not None:
                receiver.hold.wait(20)
            status = receiver.next_status()
            with receiver._lock:
                receiver.answered.append(status)
            self.send_response(status)
            if status >= 300 and receiver.retry_after is not None:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what was received."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out) before the answer: nothing to report."""


@contextmanager
def serving() -> Iterator[Receiver]:
    receiver = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/B0/s3cr3t-token"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
