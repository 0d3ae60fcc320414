"""GitHub answering 500 and 429 to the daemon's commit statuses: each status is set once,
in order, after the waits GitHub asks for; every wait is said in the log (the fault suite)."""

from __future__ import annotations

from tests.daemon.conftest import StartDaemon
from tests.github.fake_github import FakeGitHub
from tests.github.fake_routes import answer, error
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


def test_commit_statuses_get_through_a_github_500_and_a_429(
    world: World, daemon: StartDaemon, fake_github: FakeGitHub
) -> None:
    head = world.commit(layered())
    fake_github.fail(
        "POST",
        r"/statuses/",
        error(500, "Server Error"),
        answer(429, {"message": "You have exceeded a secondary rate limit"}, retry_after="1"),
    )
    served = daemon(
        "--poll-interval",
        "1h",
        GITOPSD_GITHUB_REPOSITORY="octo-org/infra",
        GITOPSD_GITHUB_TOKEN=fake_github.token,
        GITOPSD_GITHUB_API_URL=fake_github.url,
    )
    served.wait_for(lambda: len(fake_github.statuses) == 2, what="two commit statuses")
    assert [(s["sha"], s["state"]) for s in fake_github.statuses] == [
        (head, "pending"),
        (head, "success"),
    ]
    assert len(fake_github.calls("POST", r"/statuses/")) == 4  # two refused, two taken
    logs = served.logs()
    assert "500" in logs and "rate limited (429, retry-after 1s); trying again in 1.0s" in logs
    assert served.environment()["status"] == "verified"  # the run never waited for GitHub
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]  # each applied once
