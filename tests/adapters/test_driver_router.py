"""The router sends command calls and workflow calls to their own runners."""

from __future__ import annotations

from pathlib import Path

from gitopsd.adapters.drivers import DriverRouter
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult
from gitopsd.model.manifests import GitHubActionsDriver


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[DriverCall] = []

    def run(self, call: DriverCall, *, cancel: CancelSignal | None = None) -> DriverResult:
        self.calls.append(call)
        return DriverResult(0, output=self.name)


def call(*, workflow: GitHubActionsDriver | None = None) -> DriverCall:
    return DriverCall(
        argv=() if workflow else ("./apply.sh",),
        cwd=Path("."),
        environment="dev",
        component="net",
        revision="r1",
        action="apply",
        inputs={},
        state_dir=Path("."),
        timeout=1.0,
        workflow=workflow,
    )


def test_each_call_goes_to_the_runner_of_its_driver_type() -> None:
    made: list[Recorder] = []

    def make_github() -> Recorder:
        made.append(Recorder("github"))
        return made[-1]

    command = Recorder("command")
    router = DriverRouter(command=command, github_actions=make_github)
    assert router.run(call()).output == "command" and made == []  # built only when needed
    workflow = GitHubActionsDriver.model_validate(
        {"type": "github-actions", "repository": "o/r", "workflow": "w.yml"}
    )
    assert router.run(call(workflow=workflow)).output == "github"
    assert router.run(call(workflow=workflow)).output == "github"
    assert len(made) == 1 and len(made[0].calls) == 2 and len(command.calls) == 1
