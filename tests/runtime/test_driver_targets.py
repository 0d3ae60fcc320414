"""What a step hands its driver: the component's validated `driver:` settings, whatever its
type, and a refusal for an action the driver cannot run (no call is made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.engine.loading import Repository
from gitopsd.engine.ports import DriverCall
from gitopsd.model.manifests import CommandDriver, GitHubActionsDriver
from gitopsd.model.state import Run
from gitopsd.runtime.runs.steps import StepError, driver_call
from tests.engine.builders import environment, repository

GITHUB_COMPONENT = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {name: net, layer: network}
spec:
  driver: {type: github-actions, repository: octo-org/infra, workflow: net.yml, ref: release}
"""
COMMAND_COMPONENT = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {name: dns, layer: network}
spec:
  driver: {type: command, plan: ./plan.sh, apply: ./apply.sh, env: {MODE: fast}}
"""


@pytest.fixture
def loaded() -> Repository:
    return repository(
        {
            "environments/dev.yaml": environment("dev"),
            "components/net/component.yaml": GITHUB_COMPONENT,
            "components/dns/component.yaml": COMMAND_COMPONENT,
        }
    )


def call(loaded: Repository, name: str, action: str, tmp_path: Path) -> DriverCall:
    run = Run.model_validate(
        {
            "id": "r1",
            "environment": "dev",
            "revision": "abc",
            "action": "apply",
            "created_at": "2026-01-01T00:00:00Z",
        }
    )
    return driver_call(
        loaded.components[name],
        action,
        run=run,
        revision="abc",
        checkout=tmp_path,
        inputs={},
        state_root=tmp_path / "state",
    )


def test_a_github_actions_component_dispatches_its_workflow_for_every_action(
    loaded: Repository, tmp_path: Path
) -> None:
    for action in ("plan", "apply", "destroy", "check"):
        made = call(loaded, "net", action, tmp_path)
        assert isinstance(made.driver, GitHubActionsDriver) and made.driver.ref == "release"
        assert made.driver_type == "github-actions" and made.action == action
    with pytest.raises(StepError, match="net: the github-actions driver has no health probe"):
        call(loaded, "net", "health", tmp_path)


def test_a_command_component_hands_its_commands_to_the_command_driver(
    loaded: Repository, tmp_path: Path
) -> None:
    made = call(loaded, "dns", "check", tmp_path)
    assert isinstance(made.driver, CommandDriver) and made.driver_type == "command"
    assert made.driver.command("check") == ("./plan.sh",) and made.driver.env == {"MODE": "fast"}
    with pytest.raises(StepError, match="dns: has no destroy command"):
        call(loaded, "dns", "destroy", tmp_path)
