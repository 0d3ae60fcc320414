"""The GitHub REST client against the GitHub-shaped fake server: shapes, errors, retries."""

from __future__ import annotations

import socket

import pytest

from gitopsd.adapters.github_api import GitHubClient, GitHubStoppedError, Stop
from gitopsd.engine.breaker import CircuitBreaker
from gitopsd.errors import GitHubError, GitHubRequestError, GitHubUnavailableError
from tests.github.fake_github import FakeGitHub
from tests.github.fake_routes import answer, error
from tests.github.fake_time import FakeTime

REPO = "octo-org/infra"
WORKFLOW = "gitopsd-component.yml"
RUNS = r"/actions/workflows/[^/]+/runs$"


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


def client_for(fake: FakeGitHub, time: FakeTime, *, token: str | None = None, **waits: float):
    return GitHubClient(fake.url, token or fake.token, waits=time.waits(**waits))


def test_dispatch_sends_github_headers_and_returns_the_run_details(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    result = client_for(fake_github, time).dispatch_workflow(
        REPO, WORKFLOW, ref="main", inputs={"component": "net"}
    )
    (sent,) = fake_github.dispatches()
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert sent.headers["user-agent"].startswith("gitopsd/")
    assert sent.body == {"ref": "main", "inputs": {"component": "net"}, "return_run_details": True}
    run = fake_github.runs[result.workflow_run_id or 0]
    assert result.html_url == f"https://github.com/{REPO}/actions/runs/{run.id}"


def test_a_204_dispatch_has_no_run_details(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.script.run_details = "no_content"
    result = client_for(fake_github, time).dispatch_workflow(REPO, WORKFLOW, ref="main", inputs={})
    assert result.workflow_run_id is None and len(fake_github.runs) == 1


def test_a_server_without_return_run_details_is_asked_again_without_it(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.run_details = "rejects_details"
    result = client_for(fake_github, time).dispatch_workflow(REPO, WORKFLOW, ref="main", inputs={})
    first, second = fake_github.dispatches()
    assert "return_run_details" in first.body and "return_run_details" not in second.body
    assert result.workflow_run_id is None and len(fake_github.runs) == 1


@pytest.mark.parametrize(
    ("change", "status", "quoted"),
    [
        ("token", 401, "Bad credentials (bad credentials: the token is missing, expired"),
        ("workflow", 404, "Not Found (not found: no such repository, workflow"),
        ("trigger", 422, "Workflow does not have 'workflow_dispatch' trigger"),
        ("ref", 422, "No ref found for: release"),
    ],
)
def test_client_errors_are_final_and_quote_github(
    fake_github: FakeGitHub, time: FakeTime, change: str, status: int, quoted: str
) -> None:
    workflow, ref, token = WORKFLOW, "main", fake_github.token
    if change == "token":
        token = "ghp_revokedToken99"
    elif change == "workflow":
        workflow = "missing.yml"
    elif change == "trigger":
        fake_github.no_dispatch_trigger.add(WORKFLOW)
    else:
        ref = "release"
    client = client_for(fake_github, time, token=token)
    with pytest.raises(GitHubRequestError) as raised:
        client.dispatch_workflow(REPO, workflow, ref=ref, inputs={})
    assert raised.value.status == status and quoted in str(raised.value)
    assert f"POST /repos/{REPO}/actions/workflows/{workflow}/dispatches" in str(raised.value)
    assert token not in str(raised.value)
    assert len(fake_github.dispatches()) == 1 and time.slept == []


def test_a_used_up_rate_limit_waits_until_its_reset(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    reset = str(int(time.epoch) + 42)
    limited = error(403, "API rate limit exceeded for user ID 1.")
    limited.headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    fake_github.fail("GET", RUNS, limited)
    runs = list(client_for(fake_github, time).workflow_runs(REPO, WORKFLOW))
    assert [run.id for run in runs] == [999] and time.slept == [43.0]


def test_429_waits_retry_after_and_a_secondary_limit_one_minute(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.fail(
        "GET",
        RUNS,
        answer(429, {"message": "Too Many Requests"}, retry_after="7"),
        error(403, "You have exceeded a secondary rate limit. Please wait a few minutes."),
    )
    list(client_for(fake_github, time, deadline=300).workflow_runs(REPO, WORKFLOW))
    assert time.slept == [7.0, 60.0] and len(fake_github.calls("GET", RUNS)) == 3


def test_a_rate_limit_past_the_deadline_is_a_clear_error(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    limited = error(403, "API rate limit exceeded")
    reset = str(int(time.epoch) + 3600)
    limited.headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    fake_github.fail("GET", RUNS, limited)
    with pytest.raises(GitHubUnavailableError, match=r"rate limit used up \(403\) until \d\d:"):
        list(client_for(fake_github, time).workflow_runs(REPO, WORKFLOW))
    assert time.slept == []


def test_server_errors_are_retried_with_growing_backoff(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.fail("GET", RUNS, error(502, "Server Error"), error(503, "Unicorn!"))
    runs = list(client_for(fake_github, time, backoff=1.0).workflow_runs(REPO, WORKFLOW))
    assert len(runs) == 1 and time.slept == [1.0, 2.0]


def test_a_cancel_ends_a_rate_limit_wait_within_one_check(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.fail("GET", RUNS, answer(429, {"message": "Too Many Requests"}, retry_after="60"))
    stop = Stop(cancelled=lambda: time.now >= 1005.0, check_every=2.0)
    with pytest.raises(GitHubStoppedError) as raised:
        list(client_for(fake_github, time).workflow_runs(REPO, WORKFLOW, stop=stop))
    assert raised.value.reason == "cancelled"
    assert "retry-after 60s); stopped waiting to try again: cancelled" in str(raised.value)
    assert time.slept == [2.0, 2.0, 2.0]  # noticed at the first check after 1005, not at 1060
    assert len(fake_github.calls("GET", RUNS)) == 1  # and not tried again


def test_the_time_left_ends_a_5xx_retry_series_on_time(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.fail("GET", RUNS, *[error(502, "Server Error") for _ in range(4)])
    stop = Stop(time_left=lambda: 1005.5 - time.now, check_every=100.0)
    with pytest.raises(GitHubStoppedError, match="502 Server Error; stopped") as raised:
        list(client_for(fake_github, time, backoff=1.0).workflow_runs(REPO, WORKFLOW, stop=stop))
    assert raised.value.reason == "timed_out"
    assert time.slept == [1.0, 2.0, 2.5]  # the 4 s backoff is cut at the time left
    assert len(fake_github.calls("GET", RUNS)) == 3


@pytest.mark.parametrize("stop", [None, Stop(check_every=0.5)], ids=["no stop", "unused stop"])
def test_without_a_stop_signal_requests_still_retry_to_success(
    fake_github: FakeGitHub, time: FakeTime, stop: Stop | None
) -> None:
    fake_github.fail(
        "GET",
        r"/runs/\d+$",
        answer(429, {"message": "Too Many Requests"}, retry_after="60"),
        error(503, "Unavailable"),
    )
    client = client_for(fake_github, time, backoff=1.0)
    run_id = client.dispatch_workflow(REPO, WORKFLOW, ref="main", inputs={}).workflow_run_id
    assert client.get_run(REPO, run_id or 0, stop=stop).id == run_id
    assert sum(time.slept) == 61.0 and len(fake_github.calls("GET", r"/runs/\d+$")) == 3


def test_a_stop_checks_at_least_sometimes() -> None:
    with pytest.raises(ValueError, match="check_every must be above 0 seconds, got 0"):
        Stop(check_every=0)


def test_the_breaker_opens_after_repeated_5xx_and_then_refuses_at_once(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.fail("GET", RUNS, *[error(500, "Server Error") for _ in range(3)])
    client = GitHubClient(
        fake_github.url,
        fake_github.token,
        waits=time.waits(deadline=10.0, backoff=1.0, max_backoff=1.0),
        breaker=CircuitBreaker(threshold=3, base_delay=30.0, max_delay=60.0),
    )
    with pytest.raises(GitHubUnavailableError, match="500 Server Error; gave up"):
        list(client.workflow_runs(REPO, WORKFLOW))
    tried = len(fake_github.calls("GET", RUNS))
    assert tried == 3  # the third failure opened the breaker for 30s, past the 10s deadline
    with pytest.raises(GitHubUnavailableError, match="circuit breaker is open after 3 failures"):
        client.get_run(REPO, 1)
    assert len(fake_github.requests) == tried  # refused without a request
    time.sleep(31.0)  # past the breaker's delay: one trial goes out, succeeds, closes it
    assert [run.id for run in client.workflow_runs(REPO, WORKFLOW)] == [999]
    assert len(fake_github.calls("GET", RUNS)) == tried + 1


def test_connection_errors_are_retried_then_reported_without_the_token(time: FakeTime) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GitHubClient(
        f"http://127.0.0.1:{port}", "ghp_secretSecret1", waits=time.waits(deadline=5.0)
    )
    with pytest.raises(GitHubUnavailableError, match="ConnectError") as raised:
        client.get_run(REPO, 5)
    assert "ghp_secretSecret1" not in str(raised.value) and len(time.slept) >= 2


def test_cancel_is_accepted_once_and_refused_when_completed(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    client = client_for(fake_github, time)
    run_id = client.dispatch_workflow(REPO, WORKFLOW, ref="main", inputs={}).workflow_run_id
    assert run_id is not None
    assert client.cancel_run(REPO, run_id) is True
    run = client.get_run(REPO, run_id)
    assert (run.status, run.conclusion) == ("completed", "cancelled")
    assert client.cancel_run(REPO, run_id) is False


def test_artifact_download_follows_the_redirect_without_the_token(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.result = {"exit_code": 0, "outputs": {"a": 1}}
    client = client_for(fake_github, time)
    run_id = client.dispatch_workflow(REPO, WORKFLOW, ref="main", inputs={}).workflow_run_id
    assert run_id is not None
    (artifact,) = client.list_run_artifacts(REPO, run_id, name="gitopsd-result")
    data = client.download_artifact(REPO, artifact.id, max_bytes=10_000)
    assert data.startswith(b"PK")
    (stored,) = fake_github.calls("GET", r"^/_storage/")
    assert "authorization" not in stored.headers


def test_an_expired_artifact_is_a_410_error(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.script.result = {"exit_code": 0}
    fake_github.script.artifact_expired = True
    client = client_for(fake_github, time)
    run_id = client.dispatch_workflow(REPO, WORKFLOW, ref="main", inputs={}).workflow_run_id
    with pytest.raises(GitHubRequestError, match="410 Artifact has expired"):
        client.download_artifact(REPO, (run_id or 0) * 10, max_bytes=10_000)


def test_commit_status_is_posted_with_a_description_github_keeps(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    client = client_for(fake_github, time)
    sha = "a" * 40
    client.create_commit_status(
        REPO, sha, state="pending", context="gitopsd/dev", description="x" * 200, target_url=None
    )
    client.create_commit_status(
        REPO,
        sha,
        state="success",
        context="gitopsd/dev",
        description="verified",
        target_url="http://gitopsd.example/api/v1/runs/r1",
    )
    first, second = fake_github.statuses
    assert len(first["description"]) == 140 and first["description"].endswith("…")
    assert "target_url" not in first and first["context"] == "gitopsd/dev"
    assert second["state"] == "success" and second["target_url"].endswith("/runs/r1")
    with pytest.raises(ValueError, match="use one of pending, success, failure, error"):
        client.create_commit_status(
            REPO, sha, state="done", context="c", description="", target_url=None
        )


def test_an_enterprise_base_url_with_a_path_works() -> None:
    fake = FakeGitHub(prefix="/api/v3").start()
    try:
        client = GitHubClient(fake.url, fake.token, waits=FakeTime().waits())
        assert fake.url.endswith("/api/v3")
        client.dispatch_workflow(REPO, WORKFLOW, ref="main", inputs={})
        assert len(fake.dispatches()) == 1
    finally:
        fake.stop()


def _dispatched(fake: FakeGitHub, count: int) -> None:
    for number in range(count):
        fake.new_run(REPO, WORKFLOW, {"correlation_id": f"c{number}"})


def test_runs_are_read_page_by_page_as_github_links_them(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    _dispatched(fake_github, 150)
    runs = list(client_for(fake_github, time).workflow_runs(REPO, WORKFLOW))
    assert len(runs) == 151 and runs[-1].id == 999  # and the foreign run, the oldest
    assert len({run.id for run in runs}) == 151
    assert [r.query.get("page") for r in fake_github.calls("GET", RUNS)] == [None, "2"]


def test_runs_are_read_up_to_the_1000_github_lists(fake_github: FakeGitHub, time: FakeTime) -> None:
    _dispatched(fake_github, 1050)
    runs = list(client_for(fake_github, time).workflow_runs(REPO, WORKFLOW))
    assert len(runs) == 1000 and len(fake_github.calls("GET", RUNS)) == 10


def test_a_next_page_link_that_leaves_the_api_is_not_followed(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    """The token goes with every request: a link elsewhere (a proxy's, a forged answer) is an
    error, not a request."""
    elsewhere = answer(
        200,
        {"total_count": 200, "workflow_runs": []},
        link='<http://evil.example/runs?page=2>; rel="next"',
    )
    fake_github.fail("GET", RUNS, elsewhere)
    with pytest.raises(GitHubError, match="leaves"):
        list(client_for(fake_github, time).workflow_runs(REPO, WORKFLOW))
    assert len(fake_github.calls("GET", RUNS)) == 1
