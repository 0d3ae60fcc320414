"""`gitopsd rollback --server`: after the run ends it looks up the environment to say the
suspension the rollback made (`remote._say_suspension`). When that look-up fails (the daemon
answers 500, or drops the connection), it says nothing more and exits with the run's code:
the run's end decides, not a second request about it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

RUN_ID = "run-20261207-1"
REVISION = "a" * 40


def stand_in(run_status: str, environment_answer: str, asked: list[str]) -> ThreadingHTTPServer:
    """A daemon's API as far as a remote rollback uses it: the rollback is queued (202), its
    run has ended with `run_status`, and the environment's look-up fails as
    `environment_answer` says (`500`, or `drop`: the connection closed, no answer). The paths
    asked for are added to `asked`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/api/v1/environments/dev/rollbacks":
                self._json(202, {"run_id": RUN_ID, "id": RUN_ID, "status": "pending"})
            else:
                self._json(404, {"error": f"no route {self.path}"})

        def do_GET(self) -> None:
            asked.append(self.path)
            if self.path == f"/api/v1/runs/{RUN_ID}":
                run = {"id": RUN_ID, "status": run_status, "trigger": "rollback"}
                self._json(200, run | ({"error": "k8s failed"} if run_status == "failed" else {}))
            elif self.path == "/api/v1/environments/dev" and environment_answer == "drop":
                self.close_connection = True
                self.connection.close()  # no status line: the client's read fails
            elif self.path == "/api/v1/environments/dev":
                self._json(500, {"error": "internal error"})
            else:
                self._json(404, {"error": f"no route {self.path}"})

        def _json(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def serve() -> Iterator[list[ThreadingHTTPServer]]:
    servers: list[ThreadingHTTPServer] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("run_status", "exit_code"), [("succeeded", 0), ("failed", 1)])
@pytest.mark.parametrize("environment_answer", ["500", "drop"])
def test_a_failed_environment_look_up_after_the_run_says_nothing_more(
    tmp_path: Path,
    serve: list[ThreadingHTTPServer],
    run_status: str,
    exit_code: int,
    environment_answer: str,
) -> None:
    asked: list[str] = []
    server = stand_in(run_status, environment_answer, asked)
    serve.append(server)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "GITOPSD_TOKEN": "ops-secret-token"}
    env.pop("GITOPSD_SERVER", None)
    done = subprocess.run(
        [sys.executable, "-m", "gitopsd", "rollback", "--env", "dev", "--to", REVISION,
         "--server", url],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == exit_code, done.stdout + done.stderr
    assert done.stderr == f"queued as {RUN_ID} on {url}; following it\n"  # no suspension line
    why = ": k8s failed" if run_status == "failed" else ""
    assert done.stdout == f"dev: {RUN_ID} {run_status}{why}\n"
    assert asked[-1] == "/api/v1/environments/dev"  # it did look, after the run ended
