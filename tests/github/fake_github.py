"""A GitHub-shaped REST server for tests: a real HTTP server on 127.0.0.1, scriptable per test.

It implements the endpoints gitopsd calls, with the status codes and JSON shapes GitHub
documents (API version 2022-11-28): workflow dispatch (204, or 200 with the run's id and URLs
when asked with `return_run_details`), runs of a workflow (paged as GitHub pages them: `per_page`,
`page`, a `Link` header), one run, cancel (202, 409), run artifacts, artifact download (302 to a
signed storage URL of this same server), commit statuses (201); errors as `{"message",
"documentation_url", "status"}`. It checks the token and the API headers on every API request
and records every request.

A dispatched run goes queued -> in_progress -> completed with `Script.conclusion`, one step per
`GET` of the run after `Script.polls_queued` / `polls_in_progress` polls. `fail(...)` queues
canned answers (5xx, rate limits) that the next matching requests get first.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.github.fake_routes import Answer, result_zip, route

__all__ = ["Answer", "FakeGitHub", "Request", "Script", "result_zip"]

DOCS = "https://docs.github.com/rest"


@dataclass
class Script:
    """How the next dispatched runs behave."""

    conclusion: str = "success"
    polls_queued: int = 1
    polls_in_progress: int = 1
    result: dict[str, Any] | None = None  # uploaded as artifact gitopsd-result (result.json)
    run_details: str = "details"  # details | no_content | rejects_details
    run_name_has_correlation: bool = True  # the workflow sets run-name with correlation_id
    appears_after_lists: int = 0  # runs lists that do not show the new run yet
    artifact_expired: bool = False
    dispatched_after: int = 0  # runs someone else dispatches right after each of ours


@dataclass
class Request:
    method: str
    path: str  # without the server's prefix and query
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any


@dataclass
class Run:
    id: int
    repository: str
    workflow: str
    inputs: dict[str, str]
    display_title: str
    script: Script
    created_at: str
    polls: int = 0
    cancelled: bool = False
    lists_seen: int = 0

    @property
    def status(self) -> str:
        if self.cancelled:
            return "completed"
        if self.polls < self.script.polls_queued:
            return "queued"
        if self.polls < self.script.polls_queued + self.script.polls_in_progress:
            return "in_progress"
        return "completed"

    @property
    def conclusion(self) -> str | None:
        if self.status != "completed":
            return None
        return "cancelled" if self.cancelled else self.script.conclusion


@dataclass
class FakeGitHub:
    token: str = "ghp_fakeToken1234567890"
    repositories: set[str] = field(default_factory=lambda: {"octo-org/infra"})
    workflows: dict[str, set[str] | None] = field(
        default_factory=lambda: {"gitopsd-component.yml": None}  # None: any inputs accepted
    )
    no_dispatch_trigger: set[str] = field(default_factory=set)
    refs: set[str] = field(default_factory=lambda: {"main"})
    prefix: str = ""
    script: Script = field(default_factory=Script)
    requests: list[Request] = field(default_factory=list)
    runs: dict[int, Run] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    _canned: list[tuple[str, str, Answer]] = field(default_factory=list)
    _taken_then: list[tuple[str, str, Answer]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- scripting --------------------------------------------------------------------------

    def fail(self, method: str, pattern: str, *answers: Answer) -> None:
        """The next requests `method` whose path matches `pattern` get `answers`, in order."""
        with self._lock:
            self._canned.extend((method, pattern, answer) for answer in answers)

    def taken_then_fail(self, method: str, pattern: str, answer: Answer) -> None:
        """The next request `method` whose path matches `pattern` is done as usual, and then
        answered with `answer` instead (a gateway's 502 after GitHub took the request)."""
        with self._lock:
            self._taken_then.append((method, pattern, answer))

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def calls(self, method: str, pattern: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def dispatches(self) -> list[Request]:
        return self.calls("POST", r"/dispatches$")

    # --- serving ----------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = self._read(handler)
        with self._lock:
            self.requests.append(request)
            answer = self._first_match(self._canned, request) or route(self, request)
            answer = self._first_match(self._taken_then, request) or answer
        self._write(handler, answer)

    def _read(self, handler: BaseHTTPRequestHandler) -> Request:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = parts.path.removeprefix(self.prefix) if self.prefix else parts.path
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        headers = {name.lower(): value for name, value in handler.headers.items()}
        return Request(handler.command, path, query, headers, body)

    @staticmethod
    def _first_match(queued: list[tuple[str, str, Answer]], request: Request) -> Answer | None:
        """The first queued answer for `request`'s method and path, taken off the queue."""
        for index, (method, pattern, answer) in enumerate(queued):
            if method == request.method and re.search(pattern, request.path):
                del queued[index]
                return answer
        return None

    def _write(self, handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.write(answer.body)

    # --- state the routes change ---------------------------------------------------------------

    def new_run(self, repository: str, workflow: str, inputs: dict[str, str]) -> Run:
        run_id = 1000 + len(self.runs) + 1
        title = "gitopsd component"
        if self.script.run_name_has_correlation:
            parts = (inputs.get("component"), inputs.get("action"), inputs.get("correlation_id"))
            title = "gitopsd " + " ".join(part or "" for part in parts)
        run = Run(
            id=run_id,
            repository=repository,
            workflow=workflow,
            inputs=inputs,
            display_title=title,
            script=self.script,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.runs[run_id] = run
        return run

    def run_json(self, run: Run) -> dict[str, Any]:
        owner, name = run.repository.split("/")
        return {
            "id": run.id,
            "name": "gitopsd component",
            "display_title": run.display_title,
            "event": "workflow_dispatch",
            "status": run.status,
            "conclusion": run.conclusion,
            "head_branch": "main",
            "run_number": run.id - 1000,
            "created_at": run.created_at,
            "url": f"{self.url}/repos/{run.repository}/actions/runs/{run.id}",
            "html_url": f"https://github.com/{owner}/{name}/actions/runs/{run.id}",
        }
