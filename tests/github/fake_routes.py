"""The endpoints of the fake GitHub (tests/github/fake_github.py), as GitHub documents them.

Each route takes the fake's state (locked by the caller) and a recorded request, and returns
an `Answer`. Error bodies are GitHub's: `{"message", "documentation_url", "status"}`.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from tests.github.fake_github import FakeGitHub, Request, Run

API_VERSION = "2022-11-28"
RESULT_ARTIFACT = "gitopsd-result"
MAX_INPUTS = 25
FOREIGN_RUN_ID = 999


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def answer(status: int, payload: Any = None, **headers: str) -> Answer:
    """A JSON answer (no body for None), headers given with '_' for '-'."""
    body = b"" if payload is None else json.dumps(payload).encode()
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    if payload is not None:
        named.setdefault("content-type", "application/json; charset=utf-8")
    return Answer(status, body, named)


def error(status: int, message: str, docs: str = "https://docs.github.com/rest") -> Answer:
    return answer(status, {"message": message, "documentation_url": docs, "status": str(status)})


def result_zip(result: dict[str, Any]) -> bytes:
    """What actions/upload-artifact makes of a folder holding result.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("result.json", json.dumps(result))
    return buffer.getvalue()


def route(fake: FakeGitHub, request: Request) -> Answer:
    if request.path.startswith("/_storage/"):
        return _storage(fake, request)
    refused = _check_headers(fake, request)
    if refused is not None:
        return refused
    for method, pattern, handler in ROUTES:
        match = re.fullmatch(pattern, request.path)
        if method == request.method and match:
            return handler(fake, request, *match.groups())
    return error(404, "Not Found")


def _check_headers(fake: FakeGitHub, request: Request) -> Answer | None:
    headers = request.headers
    if not headers.get("user-agent"):
        return error(
            403,
            "Request forbidden by administrative rules. Please make sure your "
            "request has a User-Agent header",
        )
    if headers.get("authorization") != f"Bearer {fake.token}":
        return error(401, "Bad credentials")
    if headers.get("accept") != "application/vnd.github+json":
        return error(415, "fake GitHub: Accept must be application/vnd.github+json")
    if headers.get("x-github-api-version") != API_VERSION:
        return error(
            400,
            f"Unsupported 'X-GitHub-Api-Version' header: {headers.get('x-github-api-version')!r}",
        )
    return None


def _dispatch(fake: FakeGitHub, request: Request, repo: str, workflow: str) -> Answer:
    if repo not in fake.repositories or workflow not in fake.workflows:
        return error(404, "Not Found", "https://docs.github.com/rest/actions/workflows")
    if workflow in fake.no_dispatch_trigger:
        return error(422, "Workflow does not have 'workflow_dispatch' trigger")
    body = request.body if isinstance(request.body, dict) else {}
    problem = _dispatch_problem(fake, workflow, body)
    if problem is not None:
        return error(422, problem)
    run = fake.new_run(repo, workflow, dict(body.get("inputs") or {}))
    for other in range(fake.script.dispatched_after):  # a busy workflow: others dispatch too
        fake.new_run(repo, workflow, {"correlation_id": f"someone-else-{run.id}-{other}"})
    if body.get("return_run_details") and fake.script.run_details == "details":
        data = fake.run_json(run)
        return answer(
            200, {"workflow_run_id": run.id, "run_url": data["url"], "html_url": data["html_url"]}
        )
    return answer(204)


def _dispatch_problem(fake: FakeGitHub, workflow: str, body: dict[str, Any]) -> str | None:
    if "ref" not in body:
        return 'Invalid request.\n\n"ref" wasn\'t supplied.'
    if "return_run_details" in body and fake.script.run_details == "rejects_details":
        return 'Invalid request.\n\n"return_run_details" is not a permitted key.'
    if body["ref"] not in fake.refs:
        return f"No ref found for: {body['ref']}"
    inputs = body.get("inputs") or {}
    if len(inputs) > MAX_INPUTS:
        supplied = len(inputs)
        return f"Invalid request.\n\nAt most {MAX_INPUTS} properties; {supplied} supplied."
    not_text = sorted(name for name, value in inputs.items() if not isinstance(value, str))
    if not_text:
        return f"Invalid request.\n\nFor 'properties/{not_text[0]}', it is not a string."
    declared = fake.workflows[workflow]
    unexpected = sorted(set(inputs) - declared) if declared is not None else []
    if unexpected:
        return f"Unexpected inputs provided: {json.dumps(unexpected)}"
    return None


def _list_runs(fake: FakeGitHub, request: Request, repo: str, workflow: str) -> Answer:
    if repo not in fake.repositories or workflow not in fake.workflows:
        return error(404, "Not Found")
    since = request.query.get("created", "").removeprefix(">=")
    event = request.query.get("event")
    first_page = request.query.get("page", "1") == "1"  # a new listing, not its next page
    shown = []
    for run in sorted(fake.runs.values(), key=lambda r: r.id, reverse=True):
        run.lists_seen += 1 if first_page else 0
        if run.lists_seen <= run.script.appears_after_lists or run.workflow != workflow:
            continue
        if (since and run.created_at < since) or (event and event != "workflow_dispatch"):
            continue
        shown.append(fake.run_json(run))
    shown.append(_foreign_run(fake, repo))
    return _paginated(fake, request, "workflow_runs", shown)


def _paginated(fake: FakeGitHub, request: Request, key: str, items: list[Any]) -> Answer:
    """One page of `items` as GitHub pages a list: `per_page` (30 unless asked, at most 100)
    from `page` (1 first), `total_count` of them all, and a `Link` header to the first, previous,
    next and last pages (each only when there is one, none when all fit on one page)."""
    per_page = min(int(request.query.get("per_page", "30")), 100)
    page = max(int(request.query.get("page", "1")), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    body = {"total_count": len(items), key: items[(page - 1) * per_page : page * per_page]}
    if last == 1:
        return answer(200, body)
    neighbours = {"prev": page - 1, "next": page + 1, "last": last, "first": 1}
    links = [
        f'<{_page_url(fake, request, number)}>; rel="{rel}"'
        for rel, number in neighbours.items()
        if 1 <= number <= last and (rel not in ("last", "first") or number != page)
    ]
    return answer(200, body, link=", ".join(links))


def _page_url(fake: FakeGitHub, request: Request, page: int) -> str:
    query = urlencode({**request.query, "page": str(page)})
    return f"{fake.url}{request.path}?{query}"


def _foreign_run(fake: FakeGitHub, repo: str) -> dict[str, Any]:
    """Someone else's run of the same workflow, which gitopsd must not mistake for its own."""
    return {
        "id": FOREIGN_RUN_ID,
        "name": "gitopsd component",
        "display_title": "manual deploy",
        "event": "workflow_dispatch",
        "status": "in_progress",
        "conclusion": None,
        "created_at": "2000-01-01T00:00:00Z",
        "html_url": f"https://github.com/{repo}/actions/runs/{FOREIGN_RUN_ID}",
    }


def _get_run(fake: FakeGitHub, request: Request, repo: str, run_id: str) -> Answer:
    run = _find(fake, repo, run_id)
    if run is None:
        return error(404, "Not Found")
    data = fake.run_json(run)
    run.polls += 1
    return answer(200, data)


def _cancel(fake: FakeGitHub, request: Request, repo: str, run_id: str) -> Answer:
    run = _find(fake, repo, run_id)
    if run is None:
        return error(404, "Not Found")
    if run.status == "completed":
        return error(409, "Cannot cancel a workflow run that is completed.")
    run.cancelled = True
    return answer(202, {})


def _artifacts(fake: FakeGitHub, request: Request, repo: str, run_id: str) -> Answer:
    run = _find(fake, repo, run_id)
    if run is None:
        return error(404, "Not Found")
    items = []
    wanted = request.query.get("name")
    if run.script.result is not None and wanted in (None, RESULT_ARTIFACT):
        items.append(
            {
                "id": run.id * 10,
                "name": RESULT_ARTIFACT,
                "size_in_bytes": 200,
                "expired": run.script.artifact_expired,
                "archive_download_url": f"{fake.url}/repos/{repo}/actions/artifacts/"
                f"{run.id * 10}/zip",
            }
        )
    return answer(200, {"total_count": len(items), "artifacts": items})


def _download(fake: FakeGitHub, request: Request, repo: str, artifact_id: str, fmt: str) -> Answer:
    run = fake.runs.get(int(artifact_id) // 10)
    if run is None or run.repository != repo or run.script.result is None or fmt != "zip":
        return error(404, "Not Found")
    if run.script.artifact_expired:
        return error(410, "Artifact has expired")
    root = fake.url.removesuffix(fake.prefix) if fake.prefix else fake.url
    return Answer(302, b"", {"location": f"{root}/_storage/artifacts/{artifact_id}.zip?sig=x"})


def _storage(fake: FakeGitHub, request: Request) -> Answer:
    if "authorization" in request.headers:  # a signed URL; storage rejects other credentials
        return Answer(
            400, b"<Error>Authentication information is not given in the correct format.</Error>"
        )
    match = re.fullmatch(r"/_storage/artifacts/(\d+)\.zip", request.path)
    run = fake.runs.get(int(match.group(1)) // 10) if match else None
    if run is None or run.script.result is None:
        return Answer(404, b"")
    return Answer(200, result_zip(run.script.result), {"content-type": "application/zip"})


def _status(fake: FakeGitHub, request: Request, repo: str, sha: str) -> Answer:
    if repo not in fake.repositories:
        return error(404, "Not Found")
    body = request.body if isinstance(request.body, dict) else {}
    if body.get("state") not in ("error", "failure", "pending", "success"):
        return error(422, "Validation Failed")
    fake.statuses.append({"sha": sha, **body})
    return answer(
        201,
        {
            "id": len(fake.statuses),
            "state": body["state"],
            "context": body.get("context", "default"),
            "description": body.get("description"),
            "target_url": body.get("target_url"),
        },
    )


def _find(fake: FakeGitHub, repo: str, run_id: str) -> Run | None:
    run = fake.runs.get(int(run_id))
    return run if run is not None and run.repository == repo else None


_REPO = r"/repos/([^/]+/[^/]+)"
ROUTES: list[tuple[str, str, Callable[..., Answer]]] = [
    ("POST", _REPO + r"/actions/workflows/([^/]+)/dispatches", _dispatch),
    ("GET", _REPO + r"/actions/workflows/([^/]+)/runs", _list_runs),
    ("GET", _REPO + r"/actions/runs/(\d+)", _get_run),
    ("POST", _REPO + r"/actions/runs/(\d+)/cancel", _cancel),
    ("GET", _REPO + r"/actions/runs/(\d+)/artifacts", _artifacts),
    ("GET", _REPO + r"/actions/artifacts/(\d+)/(\w+)", _download),
    ("POST", _REPO + r"/statuses/([0-9a-f]+)", _status),
]
