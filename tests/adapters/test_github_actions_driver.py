"""The github-actions driver against the GitHub-shaped fake: dispatch, find, follow, stop."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gitopsd.engine.ports import StepTry
from tests.github.calls import CORRELATION, REVISION, make_call, make_runner
from tests.github.fake_github import FakeGitHub, Script
from tests.github.fake_routes import FOREIGN_RUN_ID, Answer, answer, error
from tests.github.fake_time import FakeTime


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


def test_dispatch_then_success_with_the_run_id_from_the_dispatch(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    (run,) = fake_github.runs.values()
    url = f"https://github.com/octo-org/infra/actions/runs/{run.id}"
    assert result.outputs == {"conclusion": "success", "run_id": run.id, "run_url": url}
    (dispatch,) = fake_github.dispatches()
    assert dispatch.body["ref"] == "main"
    assert dispatch.body["inputs"] == {
        "region": "westeurope",
        "nodes": "3",  # dispatch inputs are strings: other values as JSON
        "environment": "dev",
        "component": "net",
        "action": "apply",
        "revision": REVISION,
        "correlation_id": CORRELATION,
    }
    assert fake_github.calls("GET", r"/runs$") == []  # no need to look for the run
    assert time.slept == [2.0, 4.0]  # queued, in_progress, completed: backoff doubles
    for expected in (f"run {run.id}: {url}", "status: queued", "status: in_progress"):
        assert expected in result.output
    assert "completed: success" in result.output


def test_without_a_run_id_the_run_is_found_by_its_correlation_id(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.run_details = "no_content"
    fake_github.script.appears_after_lists = 2
    result = make_runner(fake_github, time, find_interval=1.5).run(make_call(fake_github))
    assert result.succeeded, result.error
    (run,) = fake_github.runs.values()
    assert result.outputs is not None and result.outputs["run_id"] == run.id != FOREIGN_RUN_ID
    listed = fake_github.calls("GET", r"/runs$")
    assert len(listed) == 3 and time.slept[:2] == [1.5, 1.5]
    assert listed[0].query["event"] == "workflow_dispatch"
    assert listed[0].query["created"].startswith(">=20")


@pytest.mark.parametrize("conclusion", ["failure", "cancelled", "timed_out", "startup_failure"])
def test_every_conclusion_but_success_fails_with_the_run_url(
    fake_github: FakeGitHub, time: FakeTime, conclusion: str
) -> None:
    fake_github.script.conclusion = conclusion
    result = make_runner(fake_github, time).run(make_call(fake_github))
    (run,) = fake_github.runs.values()
    assert not result.succeeded and result.exit_code is None and not result.cancelled
    assert result.error == (
        f"workflow run {run.id} concluded {conclusion}: "
        f"https://github.com/octo-org/infra/actions/runs/{run.id}"
    )


def test_our_timeout_cancels_the_run(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.script.polls_queued = 1000
    result = make_runner(fake_github, time).run(make_call(fake_github, timeout=45.0))
    (run,) = fake_github.runs.values()
    assert result.timed_out and not result.succeeded
    assert result.error == (
        "timed out after 45s; asked GitHub to cancel workflow run "
        f"https://github.com/octo-org/infra/actions/runs/{run.id}"
    )
    assert len(fake_github.calls("POST", r"/cancel$")) == 1 and run.cancelled
    assert sum(time.slept) == pytest.approx(45.0)
    assert f"cancel requested for run {run.id}" in result.output


def test_a_cancelled_call_cancels_the_run(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.script.polls_queued = 1000

    class CancelAfterTenSeconds:
        def is_set(self) -> bool:
            return time.now >= 1010.0

    runner = make_runner(fake_github, time)
    result = runner.run(make_call(fake_github), cancel=CancelAfterTenSeconds())
    assert result.cancelled and not result.timed_out
    assert result.error is not None and result.error.startswith("cancelled; asked GitHub")
    assert len(fake_github.calls("POST", r"/cancel$")) == 1


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("token", "401 Bad credentials"),
        ("workflow", "404 Not Found"),
        ("inputs", 'Unexpected inputs provided: ["nodes", "region"]'),
    ],
)
def test_client_errors_fail_at_once_without_retries(
    fake_github: FakeGitHub, time: FakeTime, setup: str, expected: str
) -> None:
    env = {"GITHUB_TOKEN": "ghp_revoked000"} if setup == "token" else None
    driver = {"workflow": "nope.yml"} if setup == "workflow" else {}
    if setup == "inputs":
        fake_github.workflows["gitopsd-component.yml"] = {
            "environment",
            "component",
            "action",
            "revision",
            "correlation_id",
        }
    result = make_runner(fake_github, time, env=env).run(make_call(fake_github, **driver))
    assert not result.succeeded and result.error is not None and expected in result.error
    assert len(fake_github.dispatches()) == 1 and time.slept == []
    assert "ghp_revoked000" not in result.error + result.output


def test_rate_limits_of_both_kinds_then_success(fake_github: FakeGitHub, time: FakeTime) -> None:
    used_up = error(403, "API rate limit exceeded for user ID 1.")
    reset = str(int(time.epoch) + 5)
    used_up.headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    fake_github.fail("POST", r"/dispatches$", used_up)
    fake_github.fail(
        "GET", r"/runs/\d+$", answer(429, {"message": "Too Many Requests"}, retry_after="3")
    )
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    assert time.slept[:2] == [6.0, 3.0] and len(fake_github.dispatches()) == 2


def test_server_errors_then_success(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.fail("POST", r"/dispatches$", error(502, "Server Error"))
    fake_github.fail("GET", r"/runs/\d+$", error(500, "Server Error"), error(503, "Unavailable"))
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    assert len(fake_github.dispatches()) == 2 and len(fake_github.runs) == 1


def test_an_outage_while_following_does_not_lose_the_run(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    # 5 failures give up one poll (30s deadline) and open the breaker (threshold 5), which
    # then refuses a poll at once; its trials fail twice more before GitHub is back
    fake_github.fail("GET", r"/runs/\d+$", *[error(500, "Server Error") for _ in range(7)])
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    assert "GitHub API unavailable, still following" in result.output
    assert "circuit breaker is open" in result.output
    assert len(fake_github.dispatches()) == 1


def test_a_run_that_never_appears_is_a_clear_error(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.script.run_details = "no_content"
    fake_github.script.run_name_has_correlation = False
    result = make_runner(fake_github, time, find_timeout=20.0).run(make_call(fake_github))
    assert not result.succeeded and result.error is not None
    assert result.error.startswith("workflow run never found: gitopsd-component.yml of octo-org/")
    assert f"correlation_id {CORRELATION}" in result.error and "within 20s" in result.error
    assert "run-name" in result.error and fake_github.calls("POST", r"/cancel$") == []


def test_too_many_or_too_large_inputs_are_refused_before_dispatching(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    runner = make_runner(fake_github, time)
    many = runner.run(make_call(fake_github, inputs={f"in{i}": i for i in range(21)}))
    assert many.error is not None and many.error.startswith("component net: 21 inputs:")
    assert "GitHub accepts at most 25" in many.error
    large = runner.run(make_call(fake_github, inputs={"blob": "x" * 70000, "small": "y"}))
    assert large.error is not None and "GitHub accepts at most 65535" in large.error
    assert "the largest is 'blob', 70000 characters" in large.error
    assert fake_github.requests == []


def test_a_missing_token_is_a_clear_error(fake_github: FakeGitHub, time: FakeTime) -> None:
    result = make_runner(fake_github, time, env={"GH_PAT": ""}).run(
        make_call(fake_github, token_env="GH_PAT")
    )
    assert result.error == (
        "the github-actions driver of net needs a GitHub token in the environment variable "
        "GH_PAT, which is not set or empty"
    )
    assert fake_github.requests == []


def test_the_token_never_reaches_output_or_errors(fake_github: FakeGitHub, time: FakeTime) -> None:
    token = fake_github.token
    fake_github.fail("POST", r"/dispatches$", error(422, f"Input 'x' has value {token}"))
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.error is not None and "has value ***" in result.error
    assert token not in result.error and token not in result.output
    assert "has value ***" in result.output


def test_the_result_artifact_gives_plan_its_exit_code_2(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.result = {"exit_code": 2, "outputs": {"ignored": True}}
    result = make_runner(fake_github, time).run(make_call(fake_github, action="plan"))
    assert (result.exit_code, result.error, result.outputs) == (2, None, None)
    assert "gitopsd-result: exit code 2" in result.output
    assert "authorization" not in fake_github.calls("GET", r"^/_storage/")[0].headers


def test_the_result_artifact_gives_apply_its_outputs(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.result = {"exit_code": 0, "outputs": {"vnet_id": "vnet-1", "size": 3}}
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded and result.outputs == {"vnet_id": "vnet-1", "size": 3}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"exit_code": "two"}, "exit_code must be a whole number, got 'two'"),
        ({"exit_code": 0, "outputs": [1]}, "outputs must be a JSON object"),
        # read as a command's outputs file: at most 64 levels (10,000 were a RecursionError)
        (
            {
                "exit_code": 0,
                "outputs": {"deep": functools.reduce(lambda v, _: [v], range(99), [])},
            },
            "is not JSON: nested deeper than 64 levels",
        ),
    ],
)
def test_an_unusable_result_artifact_fails_the_call(
    fake_github: FakeGitHub, time: FakeTime, result: dict[str, Any], expected: str
) -> None:
    fake_github.script.result = result
    done = make_runner(fake_github, time).run(make_call(fake_github))
    assert not done.succeeded and done.error is not None
    assert done.error.startswith("gitopsd-result artifact: result.json")
    assert done.error.endswith(expected)


def test_an_expired_result_artifact_fails_the_call(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.script.result = {"exit_code": 0}
    fake_github.script.artifact_expired = True
    done = make_runner(fake_github, time).run(make_call(fake_github))
    (run,) = fake_github.runs.values()
    assert done.error == f"gitopsd-result artifact of run {run.id} has expired"


def test_the_output_is_capped(fake_github: FakeGitHub, time: FakeTime) -> None:
    fake_github.script.polls_queued = 10
    runner = make_runner(fake_github, time)
    runner.max_output = 300
    fake_github.fail("GET", r"/runs/\d+$", *[error(500, "x" * 50) for _ in range(5)])
    result = runner.run(make_call(fake_github))
    assert result.succeeded and "bytes omitted" in result.output
    assert len(result.output.encode()) < 400
    assert json.dumps(result.outputs)  # still a JSON-able outputs object


class CancelAt:
    """A cancel signal set from a moment of the injected time on."""

    def __init__(self, time: FakeTime, moment: float) -> None:
        self.time, self.moment = time, moment

    def is_set(self) -> bool:
        return self.time.now >= self.moment


def test_a_cancel_during_a_rate_limit_wait_cancels_the_run_at_once(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.polls_queued = 1000
    limited = answer(429, {"message": "Too Many Requests"}, retry_after="60")
    fake_github.fail("GET", r"/runs/\d+$", limited)
    runner = make_runner(fake_github, time, request_deadline=150.0, wait_slice=1.0)
    result = runner.run(make_call(fake_github), cancel=CancelAt(time, 1005.0))
    (run,) = fake_github.runs.values()
    assert result.cancelled and not result.timed_out and run.cancelled
    assert result.error == (
        "cancelled; asked GitHub to cancel workflow run "
        f"https://github.com/octo-org/infra/actions/runs/{run.id}"
    )
    assert sum(time.slept) == 5.0  # noticed within a slice, not after the whole minute
    assert len(fake_github.calls("GET", r"/runs/\d+$")) == 1
    assert "stopped: GitHub API GET /repos/octo-org/infra/actions/runs/" in result.output
    assert "rate limited (429, retry-after 60s)" in result.output


def test_the_timeout_during_a_5xx_retry_series_cancels_the_run_on_time(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.polls_queued = 1000
    fake_github.fail("GET", r"/runs/\d+$", *[error(500, "Server Error") for _ in range(10)])
    result = make_runner(fake_github, time).run(make_call(fake_github, timeout=10.0))
    (run,) = fake_github.runs.values()
    assert result.timed_out and not result.cancelled and run.cancelled
    assert result.error == (
        "timed out after 10s; asked GitHub to cancel workflow run "
        f"https://github.com/octo-org/infra/actions/runs/{run.id}"
    )
    # backoff 1, 2, 4, then the 8 s wait is cut at the deadline (not the request's 30 s)
    assert time.slept == [1.0, 2.0, 4.0, 3.0]
    assert len(fake_github.calls("GET", r"/runs/\d+$")) == 4


def test_a_cancel_while_the_dispatch_is_retried_dispatches_nothing_more(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.fail("POST", r"/dispatches$", *[error(502, "Server Error") for _ in range(5)])
    runner = make_runner(fake_github, time, wait_slice=1.0)
    result = runner.run(make_call(fake_github), cancel=CancelAt(time, 1002.0))
    assert result.cancelled and result.error == (
        "cancelled; the workflow run was not cancelled (it was not found or not reachable)"
    )
    # the 502 may hide a run GitHub started: it is looked for, not dispatched again blindly
    assert len(fake_github.dispatches()) == 1 and sum(time.slept) == 2.0
    assert fake_github.runs == {} and fake_github.calls("POST", r"/cancel$") == []


def test_a_cancel_while_looking_for_the_run_still_finds_and_cancels_it(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.run_details = "no_content"
    fake_github.script.polls_queued = 1000
    limited = answer(429, {"message": "Too Many Requests"}, retry_after="60")
    fake_github.fail("GET", r"/workflows/[^/]+/runs$", limited)
    runner = make_runner(fake_github, time, request_deadline=150.0, wait_slice=1.0)
    result = runner.run(make_call(fake_github), cancel=CancelAt(time, 1003.0))
    (run,) = fake_github.runs.values()
    assert result.cancelled and run.cancelled and sum(time.slept) == 3.0
    assert result.error is not None and result.error.endswith(f"/actions/runs/{run.id}")
    assert len(fake_github.calls("GET", r"/workflows/[^/]+/runs$")) == 2  # the last look


def test_a_retried_try_ends_the_run_an_earlier_try_of_its_step_left_first(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.script.polls_queued = 1000
    left = fake_github.new_run(  # a killed gitopsd's try of the same step, still queued
        "octo-org/infra", "gitopsd-component.yml", {"correlation_id": "run-7.3-earlier"}
    )
    fake_github.new_run(  # step 31's run: not step 3's to end
        "octo-org/infra", "gitopsd-component.yml", {"correlation_id": "run-7.31-earlier"}
    )
    fake_github.script = Script(polls_queued=0, polls_in_progress=0)
    since = datetime.now(UTC)
    runner = make_runner(fake_github, time)

    first = runner.run(make_call(fake_github, step=StepTry("run-7.3", since, earlier=False)))
    assert first.succeeded and fake_github.calls("GET", r"/runs$") == []  # nothing to look for
    assert not left.cancelled

    again = runner.run(make_call(fake_github, step=StepTry("run-7.3", since, earlier=True)))
    assert again.succeeded, again.error
    assert left.cancelled and [r.id for r in fake_github.runs.values() if r.cancelled] == [left.id]
    order = [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake_github.requests]
    second = order[order.index(("GET", "runs")) :]
    assert second[:4] == [
        ("GET", "runs"),
        ("POST", "cancel"),
        ("GET", "runs"),
        ("POST", "dispatches"),
    ]
    assert f"run {left.id} of an earlier try of this step is still queued" in again.output
    assert fake_github.dispatches()[-1].body["inputs"]["correlation_id"].startswith("run-7.3-")


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "nan"},
        {"retry-after": "-30"},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "nan"},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1e30"},
    ],
)
def test_hostile_rate_limit_headers_are_no_wait_and_no_crash(
    fake_github: FakeGitHub, time: FakeTime, headers: dict[str, str]
) -> None:
    """A proxy's or a broken server's header is not a number of seconds to wait: the limit is
    waited out as one without it (a secondary limit's minute), or the request is given up
    past its deadline, and the run is followed to its end."""
    limited = answer(429, {"message": "Too Many Requests"})
    limited.headers.update(headers)
    fake_github.fail("GET", r"/runs/\d+$", limited)
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    assert all(0 <= waited < float("inf") for waited in time.slept), time.slept


@pytest.mark.parametrize(
    "answered",
    [
        Answer(200, b"<html>proxy error</html>", {"content-type": "text/html"}),
        error(401, "Bad credentials"),  # the token was revoked while the run went on
    ],
)
def test_a_call_that_fails_while_following_cancels_the_run_it_started(
    fake_github: FakeGitHub, time: FakeTime, answered: Answer
) -> None:
    """The step fails, and is then retried, rolled back or left failed: the workflow run it
    started must not go on applying at GitHub beside whatever runs next."""
    fake_github.script.polls_queued = 1000
    fake_github.fail("GET", r"/runs/\d+$", answered)
    result = make_runner(fake_github, time).run(make_call(fake_github))
    (run,) = fake_github.runs.values()
    assert not result.succeeded and result.error is not None
    assert run.cancelled, result.error
    assert "asked GitHub to cancel workflow run" in result.error


def test_a_dispatch_github_took_but_answered_502_is_not_dispatched_again(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    """GitHub's edge can answer 502 (or the connection drop) after the dispatch was taken:
    sent again, the workflow would run twice, two applies of one component. The run is
    looked for by its correlation id first, and followed when it is there."""
    fake_github.taken_then_fail("POST", r"/dispatches$", error(502, "Server Error"))
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    assert len(fake_github.dispatches()) == 1, "the workflow was dispatched twice"
    (run,) = fake_github.runs.values()  # one run: the one the 502 hid
    assert result.outputs is not None and result.outputs["run_id"] == run.id


def test_a_dispatch_that_failed_before_github_took_it_is_sent_again(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    fake_github.fail("POST", r"/dispatches$", error(502, "Server Error"))
    result = make_runner(fake_github, time, find_timeout=6.0).run(make_call(fake_github))
    assert result.succeeded, result.error
    assert len(fake_github.dispatches()) == 2 and len(fake_github.runs) == 1


def test_a_run_on_the_second_page_of_runs_is_found_not_dispatched_again(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    """A busy workflow: more than 100 runs dispatched after ours, so ours is on page 2 of the
    list. Read from page 1 only, it was never found (and a dispatch GitHub did not answer was
    sent again: a second apply)."""
    fake_github.script.run_details = "no_content"
    fake_github.script.dispatched_after = 150
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    ours = next(run for run in fake_github.runs.values() if CORRELATION in run.display_title)
    assert result.outputs is not None and result.outputs["run_id"] == ours.id
    listed = fake_github.calls("GET", r"/runs$")
    assert [request.query.get("page") for request in listed] == [None, "2"]  # then no more


def test_an_earlier_try_s_run_on_the_second_page_is_ended_too(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    """A step resumed long after its earlier try: more than 100 runs of the workflow came
    since, and the earlier try's run, still going, is on page 2; it is cancelled all the same."""
    fake_github.script.polls_queued = 1000
    left = fake_github.new_run(
        "octo-org/infra", "gitopsd-component.yml", {"correlation_id": "run-7.3-earlier"}
    )
    for other in range(150):
        fake_github.new_run(
            "octo-org/infra", "gitopsd-component.yml", {"correlation_id": f"someone-{other}"}
        )
    fake_github.script = Script(polls_queued=0, polls_in_progress=0)
    since = datetime.now(UTC)
    result = make_runner(fake_github, time).run(
        make_call(fake_github, step=StepTry("run-7.3", since, earlier=True))
    )
    assert result.succeeded, result.error
    assert left.cancelled, result.output


def test_an_unanswered_dispatch_whose_run_is_on_page_2_is_not_sent_again(
    fake_github: FakeGitHub, time: FakeTime
) -> None:
    """The 502 after GitHub took the dispatch, on a busy workflow: its run is looked for on
    every page before the dispatch is sent again, else the component is applied twice."""
    fake_github.script.dispatched_after = 150
    fake_github.taken_then_fail("POST", r"/dispatches$", error(502, "Server Error"))
    result = make_runner(fake_github, time).run(make_call(fake_github))
    assert result.succeeded, result.error
    assert len(fake_github.dispatches()) == 1, "the workflow was dispatched twice"
