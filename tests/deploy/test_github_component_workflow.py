"""deploy/github/workflows/gitopsd-component.yml keeps the github-actions driver's protocol.

GitHub cannot run here; the workflow file is checked against what the driver sends and reads:
its declared inputs accept a real dispatch of the driver (through the fake GitHub, which refuses
undeclared inputs as GitHub does), its run-name carries the correlation id, and it uploads the
`gitopsd-result` artifact. (actionlint checks the file's syntax elsewhere.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gitopsd.adapters import github_protocol
from gitopsd.engine import workflow_inputs
from tests.github.calls import make_call, make_runner
from tests.github.fake_github import FakeGitHub
from tests.github.fake_time import FakeTime

WORKFLOW = Path(__file__).resolve().parents[2] / "deploy/github/workflows/gitopsd-component.yml"


def load() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads `on` as true
    return document


def test_the_declared_inputs_accept_the_drivers_dispatch(fake_github: FakeGitHub) -> None:
    declared = set(load()["on"]["workflow_dispatch"]["inputs"])
    assert set(workflow_inputs.PROTOCOL_INPUTS) <= declared
    assert len(declared) <= workflow_inputs.MAX_INPUTS
    fake_github.workflows["gitopsd-component.yml"] = declared
    fake_github.script.result = {"exit_code": 0, "outputs": {}}
    call = make_call(fake_github, inputs={"region": "northeurope", "node_count": 5})
    result = make_runner(fake_github, FakeTime()).run(call)
    assert result.succeeded, result.error
    assert fake_github.dispatches()[0].body["inputs"]["node_count"] == "5"


def test_the_run_name_carries_the_correlation_id_and_the_result_is_uploaded() -> None:
    document = load()
    assert "${{ inputs.correlation_id }}" in document["run-name"]
    steps = document["jobs"]["run"]["steps"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["name"] == github_protocol.RESULT_ARTIFACT
    assert upload["with"]["path"].endswith("/" + github_protocol.RESULT_FILE)
    assert upload["if"] == "always()"


def test_the_action_choices_are_every_action_the_driver_dispatches() -> None:
    """plan, apply, destroy and the drift check; a health probe is never dispatched."""
    action = load()["on"]["workflow_dispatch"]["inputs"]["action"]
    assert action["options"] == ["plan", "apply", "destroy", "check"]
