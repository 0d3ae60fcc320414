"""The router sends command calls and workflow calls to their own runners."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gitopsd.adapters.drivers import DriverRouter, in_threads
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, OnStarted
from gitopsd.model.manifests import GitHubActionsDriver


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[DriverCall] = []

        self.batches: list[int] = []

    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,
    ) -> DriverResult:
        self.calls.append(call)
        return DriverResult(0, output=self.name)

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        self.batches.append(len(calls))
        return in_threads(self.run, calls, parallelism=parallelism, cancel=cancel, on_done=on_done)


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


def test_a_batch_of_command_calls_goes_to_the_command_runner_whole() -> None:
    """Its own run_many keeps `parallelism` for the batch; a mix runs a call per thread."""
    github = Recorder("github")
    command = Recorder("command")
    router = DriverRouter(command=command, github_actions=lambda: github)
    ended: list[int] = []
    results = router.run_many(
        [call(), call(), call()], parallelism=2, on_done=lambda index, _: ended.append(index)
    )
    assert [r.output for r in results] == ["command"] * 3
    assert command.batches == [3] and sorted(ended) == [0, 1, 2]
    workflow = GitHubActionsDriver.model_validate(
        {"type": "github-actions", "repository": "o/r", "workflow": "w.yml"}
    )
    mixed = router.run_many([call(), call(workflow=workflow), call()], parallelism=2)
    assert [r.output for r in mixed] == ["command", "github", "command"]  # in the calls' order
    assert command.batches == [3] and len(command.calls) == 5 and len(github.calls) == 1
