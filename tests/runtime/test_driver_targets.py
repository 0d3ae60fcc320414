"""What a step runs for each driver type: a command's argv, or a workflow (never `health`)."""

from __future__ import annotations

import pytest

from gitopsd.engine.loading import Repository
from gitopsd.runtime.runs.steps import StepError, target_for
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


def test_a_github_actions_component_dispatches_its_workflow_for_every_action(
    loaded: Repository,
) -> None:
    entry = loaded.components["net"]
    for action in ("plan", "apply", "destroy", "check"):
        target = target_for(entry, action)
        assert target.argv == () and target.workflow is entry.manifest.spec.driver
        assert target.workflow is not None and target.workflow.ref == "release"
    with pytest.raises(StepError, match="the github-actions driver has no health probe"):
        target_for(entry, "health")


def test_a_command_component_runs_its_argv_with_its_env(loaded: Repository) -> None:
    target = target_for(loaded.components["dns"], "check")
    assert target.argv == ("./plan.sh",) and target.env == {"MODE": "fast"}
    assert target.workflow is None
    with pytest.raises(StepError, match="dns has no destroy command"):
        target_for(loaded.components["dns"], "destroy")
