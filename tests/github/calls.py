"""Driver calls and runners for tests of the github-actions driver against the fake GitHub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitopsd.adapters.github_actions_driver import GitHubActionsRunner, Timing
from gitopsd.adapters.github_api import GitHubClient
from gitopsd.engine.ports import DriverCall, StepTry
from gitopsd.model.manifests import GitHubActionsDriver
from tests.github.fake_github import FakeGitHub
from tests.github.fake_time import FakeTime

REVISION = "c0ffee" + "0" * 34
CORRELATION = "corr0123456789abcdef"


def make_call(
    fake: FakeGitHub,
    *,
    action: str = "apply",
    inputs: dict[str, Any] | None = None,
    timeout: float = 600.0,
    step: StepTry | None = None,
    **driver: str,
) -> DriverCall:
    workflow = GitHubActionsDriver.model_validate(
        {
            "type": "github-actions",
            "repository": "octo-org/infra",
            "workflow": "gitopsd-component.yml",
            "api_url": fake.url,
            **driver,
        }
    )
    return DriverCall(
        driver=workflow,
        cwd=Path("/nonexistent"),
        environment="dev",
        component="net",
        revision=REVISION,
        action=action,
        inputs=inputs if inputs is not None else {"region": "westeurope", "nodes": 3},
        state_dir=Path("/nonexistent"),
        timeout=timeout,
        step=step,
    )


def make_runner(
    fake: FakeGitHub,
    time: FakeTime,
    *,
    env: dict[str, str] | None = None,
    request_deadline: float = 30.0,
    **timing: float,
) -> GitHubActionsRunner:
    def client(api_url: str, token: str) -> GitHubClient:
        return GitHubClient(api_url, token, waits=time.waits(deadline=request_deadline))

    # one sleep per wait (no slicing), so the waits themselves can be asserted
    options: dict[str, Any] = {"find_timeout": 10.0, "wait_slice": 1000.0, **timing}
    return GitHubActionsRunner(
        base_env={"GITHUB_TOKEN": fake.token} if env is None else env,
        timing=Timing(sleep=time.sleep, monotonic=time.monotonic, **options),
        client_factory=client,
        new_id=lambda: CORRELATION,
    )
