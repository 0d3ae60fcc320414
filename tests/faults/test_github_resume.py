"""`kill -9` of gitopsd while a github-actions driver follows the workflow run it dispatched.

The run goes on at GitHub. The next command resumes the step and dispatches the workflow
again (drivers are re-run, SPEC 3.4), but only once the run the killed gitopsd left is
ended: two runs of one component's driver must never overlap, whatever the driver type.
"""

from __future__ import annotations

import signal
import time

from tests.github import manifests
from tests.github.fake_github import FakeGitHub, Script
from tests.runtime.world import World, environment


def test_a_resumed_step_ends_the_workflow_run_the_killed_gitopsd_left_before_dispatching(
    world: World, fake_github: FakeGitHub
) -> None:
    world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/cluster/component.yaml": manifests.cluster(fake_github.url),
        }
    )
    fake_github.script = Script(polls_queued=10**6)  # the first run waits for a runner
    env = {"GITHUB_TOKEN": fake_github.token}
    killed = world.start_gitopsd("apply", "--env", "dev", env=env)
    try:
        deadline = time.monotonic() + 30
        while not fake_github.calls("GET", r"/actions/runs/1001$"):  # dispatched, followed
            assert killed.poll() is None and time.monotonic() < deadline, killed.communicate()
            time.sleep(0.02)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.communicate()
    fake_github.script = Script(polls_queued=0, polls_in_progress=0)  # later runs finish

    resumed = world.gitopsd("apply", "--env", "dev", env=env)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    first, second = fake_github.runs[1001], fake_github.runs[1002]
    assert first.cancelled, "the run the killed gitopsd left still runs beside the new one"
    order = [(r.method, r.path) for r in fake_github.requests]
    cancelled_at = order.index(("POST", "/repos/octo-org/infra/actions/runs/1001/cancel"))
    dispatched_again = [i for i, (method, path) in enumerate(order) if path.endswith("/dispatches")]
    assert cancelled_at < dispatched_again[1]  # ended before the step ran again
    assert second.inputs["correlation_id"] != first.inputs["correlation_id"]
