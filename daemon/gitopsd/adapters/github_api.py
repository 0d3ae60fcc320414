"""A typed client of the few GitHub REST endpoints gitopsd needs: Actions runs and commit statuses.

Pipeline: execute -> `github_actions_driver` (dispatch a workflow, follow its run, read its
result artifact) and report -> commit statuses. Shapes and status codes are GitHub's documented
ones ("REST API endpoints for workflows / workflow runs / artifacts / commit statuses", API
version 2022-11-28). The base URL is the driver's `api_url`, so GitHub Enterprise Server
(`https://HOST/api/v3`) works like github.com.

Retries, rate limits, the circuit breaker and the error types live in `github_http`; this module
only says what each endpoint sends and expects. The Actions calls take an optional `stop` (the
driver call's cancel signal and deadline, `github_http.Stop`) that ends their retry waits early;
the client itself is shared by every call for one API URL and token, so the stop is per
request. Answers are parsed into small pydantic models that ignore the many fields gitopsd does
not read.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import certifi
import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

import gitopsd
from gitopsd.adapters.github_http import (
    GitHubStoppedError,
    Retrier,
    Stop,
    Waits,
    raise_for_answer,
)
from gitopsd.engine.breaker import CircuitBreaker
from gitopsd.errors import GitHubError, GitHubRequestError, GitHubUnavailableError

__all__ = [
    "API_VERSION",
    "Artifact",
    "DispatchResult",
    "GitHubClient",
    "GitHubError",
    "GitHubRequestError",
    "GitHubStoppedError",
    "GitHubUnavailableError",
    "Stop",
    "Waits",
    "WorkflowRun",
]

API_VERSION = "2022-11-28"
STATUS_STATES = ("pending", "success", "failure", "error")
MAX_STATUS_DESCRIPTION = 140  # characters GitHub shows of a commit status description
MAX_RUN_PAGES = 10  # of 100 runs: all GitHub lists of a workflow's runs filtered by creation time
_UNKNOWN_KEY = "return_run_details"


class _Answer(BaseModel):
    # run ids and URLs differ with every answer: none kept in pydantic's cache of strings
    # (see `model.state.Record`)
    model_config = ConfigDict(extra="ignore", frozen=True, cache_strings=False)


Answer = TypeVar("Answer", bound=_Answer)


class DispatchResult(_Answer):
    """The dispatch answer: the run's id and URLs when GitHub returned them (200), else empty
    (204 No Content, from servers without `return_run_details`)."""

    workflow_run_id: int | None = None
    run_url: str | None = None
    html_url: str | None = None


class WorkflowRun(_Answer):
    id: int
    name: str | None = None
    display_title: str = ""  # the workflow's `run-name`, where gitopsd's correlation id is
    status: str | None = None  # queued, in_progress, completed, waiting, requested, pending
    conclusion: str | None = None  # success, failure, cancelled, timed_out, ... once completed
    html_url: str = ""
    event: str = ""
    created_at: datetime | None = None


class Artifact(_Answer):
    id: int
    name: str
    size_in_bytes: int = 0
    expired: bool = False


class _RunsPage(_Answer):
    workflow_runs: list[WorkflowRun] = []


class _ArtifactsPage(_Answer):
    artifacts: list[Artifact] = []


class GitHubClient:
    """One API base URL and token; thread-safe. Its retry waits and breaker are injectable."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        waits: Waits | None = None,
        breaker: CircuitBreaker | None = None,
        request_timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._retrier = Retrier(waits=waits or Waits(), secret=token)
        if breaker is not None:
            self._retrier.breaker = breaker
        self._http = httpx.Client(
            base_url=self.api_url,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "Authorization": f"Bearer {token}",
                "User-Agent": f"gitopsd/{gitopsd.__version__}",
            },
            timeout=request_timeout,
            transport=transport,
            verify=_tls(),
            follow_redirects=False,  # the artifact redirect is followed by hand, without the token
        )
        self._storage = httpx.Client(
            headers={"User-Agent": f"gitopsd/{gitopsd.__version__}"},
            timeout=request_timeout,
            transport=transport,
            verify=_tls(),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()
        self._storage.close()

    # --- workflows and runs -------------------------------------------------------------------

    def dispatch_workflow(
        self,
        repository: str,
        workflow: str,
        *,
        ref: str,
        inputs: dict[str, str],
        stop: Stop | None = None,
    ) -> DispatchResult:
        """POST .../dispatches, asking for the run's id; a server that does not know
        `return_run_details` (older GitHub Enterprise Server) is asked again without it.
        Not sent again after a 5xx or a connection error (`GitHubUnavailableError`): GitHub
        may have started the run it did not answer for; the caller looks for it first."""
        path = f"/repos/{repository}/actions/workflows/{workflow}/dispatches"
        body: dict[str, Any] = {"ref": ref, "inputs": inputs, "return_run_details": True}
        try:
            response = self._call("POST", path, stop=stop, again_after_outage=False, json=body)
        except GitHubRequestError as error:
            if error.status not in (400, 422) or _UNKNOWN_KEY not in error.github_message:
                raise
            plain = {"ref": ref, "inputs": inputs}
            response = self._call("POST", path, stop=stop, again_after_outage=False, json=plain)
        if response.status_code == 204 or not response.content:
            return DispatchResult()
        return _parse(DispatchResult, response, what=f"POST {path}")

    def workflow_runs(
        self,
        repository: str,
        workflow: str,
        *,
        event: str | None = None,
        created_since: datetime | None = None,
        stop: Stop | None = None,
    ) -> Iterator[WorkflowRun]:
        """The runs of `workflow`, newest first, a page of 100 at a time: the next page (its
        `Link` header's rel="next") is read only when the caller goes on past this one, so a
        run found on page 1 costs one request, and a run on page 2 (more than 100 runs in the
        window: a busy workflow, a step resumed hours later) is still found. At most
        MAX_RUN_PAGES pages: GitHub lists no more than 1,000 runs when filtered by `created`
        or `event`; a run beyond them is not found yet."""
        params: dict[str, str | int] = {"per_page": 100}
        if event is not None:
            params["event"] = event
        if created_since is not None:
            stamp = created_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            params["created"] = f">={stamp}"
        path = f"/repos/{repository}/actions/workflows/{workflow}/runs"
        response = self._call("GET", path, stop=stop, params=params)
        for page in range(1, MAX_RUN_PAGES + 1):
            yield from _parse(_RunsPage, response, what=f"GET {path}").workflow_runs
            following = self._next_page(response, what=f"GET {path}")
            if following is None or page == MAX_RUN_PAGES:
                return
            response = self._call("GET", following, stop=stop)

    def get_run(self, repository: str, run_id: int, *, stop: Stop | None = None) -> WorkflowRun:
        path = f"/repos/{repository}/actions/runs/{run_id}"
        return _parse(WorkflowRun, self._call("GET", path, stop=stop), what=f"GET {path}")

    def cancel_run(self, repository: str, run_id: int) -> bool:
        """Ask GitHub to cancel the run (202); False when it cannot be cancelled any more (409,
        e.g. it completed meanwhile)."""
        try:
            self._call("POST", f"/repos/{repository}/actions/runs/{run_id}/cancel")
        except GitHubRequestError as error:
            if error.status == 409:
                return False
            raise
        return True

    # --- artifacts ----------------------------------------------------------------------------

    def list_run_artifacts(
        self, repository: str, run_id: int, *, name: str | None = None, stop: Stop | None = None
    ) -> list[Artifact]:
        params: dict[str, str | int] = {"per_page": 100}
        if name is not None:
            params["name"] = name
        path = f"/repos/{repository}/actions/runs/{run_id}/artifacts"
        response = self._call("GET", path, stop=stop, params=params)
        page = _parse(_ArtifactsPage, response, what=f"GET {path}")
        return list(page.artifacts)

    def download_artifact(
        self, repository: str, artifact_id: int, *, max_bytes: int, stop: Stop | None = None
    ) -> bytes:
        """The artifact's zip. GitHub answers 302 with a short-lived storage URL; that URL is
        fetched without the token (it is signed, and the token must not reach storage)."""
        what = f"GET /repos/{repository}/actions/artifacts/{artifact_id}/zip"
        response = self._call("GET", what.removeprefix("GET "), stop=stop)
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise GitHubError(
                f"GitHub API {what}: expected a redirect to the archive, got "
                f"{response.status_code}",
                status=response.status_code,
            )
        url = response.url.join(location)
        stored = self._retrier.send(
            f"GET artifact {artifact_id} archive", lambda: self._storage.get(url), stop=stop
        )
        if stored.status_code >= 400:
            raise GitHubError(
                f"artifact {artifact_id} archive: storage answered {stored.status_code}",
                status=stored.status_code,
            )
        if len(stored.content) > max_bytes:
            raise GitHubError(f"artifact {artifact_id} archive: larger than {max_bytes} bytes")
        return stored.content

    # --- commit statuses ----------------------------------------------------------------------

    def create_commit_status(
        self,
        repository: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str,
        target_url: str | None,
    ) -> None:
        """POST /repos/{owner}/{repo}/statuses/{sha} (201). The description is cut to the 140
        characters GitHub keeps, with an ellipsis when cut."""
        if state not in STATUS_STATES:
            allowed = ", ".join(STATUS_STATES)
            raise ValueError(f"commit status state {state!r}: use one of {allowed}")
        body: dict[str, str] = {
            "state": state,
            "context": context,
            "description": _shorten(description, MAX_STATUS_DESCRIPTION),
        }
        if target_url:
            body["target_url"] = target_url
        self._call("POST", f"/repos/{repository}/statuses/{sha}", json=body)

    def _next_page(self, response: httpx.Response, *, what: str) -> str | None:
        """The URL of the page after `response` (its `Link` header's rel="next"), None on the
        last page. A link that leaves the API base URL is refused: the token goes with every
        request this client sends."""
        following = response.links.get("next", {}).get("url")
        if following is None:
            return None
        if not following.startswith(self.api_url + "/"):
            raise GitHubError(
                f"GitHub API {what}: the next page's link leaves {self.api_url}: "
                f"{self._retrier.scrub(following)}",
                status=response.status_code,
            )
        return following

    # --- one request --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        stop: Stop | None = None,
        again_after_outage: bool = True,
        **options: Any,
    ) -> httpx.Response:
        what = f"{method} {path}"
        response = self._retrier.send(
            what,
            lambda: self._http.request(method, path, **options),
            stop=stop,
            again_after_outage=again_after_outage,
        )
        raise_for_answer(what, response, scrub=self._retrier.scrub)
        return response


def _parse(model: type[Answer], response: httpx.Response, *, what: str) -> Answer:
    """The answer as `model`, or a GitHubError saying what did not fit."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise GitHubError(
            f"GitHub API {what}: unexpected answer ({where}: {first['msg']})",
            status=response.status_code,
        ) from None


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA bundle again for each is slow."""
    return ssl.create_default_context(cafile=certifi.where())


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
