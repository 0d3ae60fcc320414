"""The router sends each call to the runner its driver type made, made on first use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gitopsd.adapters.drivers import DriverRouter, in_threads
from gitopsd.engine.drivers import DriverSetup
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, DriverRunner, OnStarted
from gitopsd.errors import UnknownDriverError
from gitopsd.model.manifests import CommandDriver, DriverSettings, GitHubActionsDriver


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


class RecordingType:
    """A driver type whose runner records its calls; counts the runners it made."""

    def __init__(self, name: str, settings: type[DriverSettings]) -> None:
        self.name = name
        self.settings = settings
        self.made: list[Recorder] = []
        self.setups: list[DriverSetup] = []

    def runner(self, setup: DriverSetup) -> DriverRunner:
        self.setups.append(setup)
        self.made.append(Recorder(self.name))
        return self.made[-1]


COMMAND = CommandDriver.model_validate({"type": "command", "plan": ["p"], "apply": ["a"]})
WORKFLOW = GitHubActionsDriver.model_validate(
    {"type": "github-actions", "repository": "o/r", "workflow": "w.yml"}
)


def call(driver: DriverSettings | None = COMMAND) -> DriverCall:
    return DriverCall(
        driver=driver,
        cwd=Path("."),
        environment="dev",
        component="net",
        revision="r1",
        action="apply",
        inputs={},
        state_dir=Path("."),
        timeout=1.0,
    )


def router(tmp_path: Path) -> tuple[DriverRouter, RecordingType, RecordingType]:
    command = RecordingType("command", CommandDriver)
    github = RecordingType("github-actions", GitHubActionsDriver)
    types = {"command": command, "github-actions": github}
    return DriverRouter(types, DriverSetup(work_dir=tmp_path)), command, github


def test_each_call_goes_to_the_runner_of_its_driver_type(tmp_path: Path) -> None:
    routing, command, github = router(tmp_path)
    assert routing.run(call()).output == "command" and github.made == []  # made when needed
    assert routing.run(call(WORKFLOW)).output == "github-actions"
    assert routing.run(call(WORKFLOW)).output == "github-actions"
    assert routing.run(call(None)).output == "command"  # a gate's command
    assert len(github.made) == 1 and len(github.made[0].calls) == 2
    assert len(command.made) == 1 and len(command.made[0].calls) == 2
    assert github.setups == [DriverSetup(work_dir=tmp_path)]


def test_a_batch_of_one_type_goes_to_its_runner_whole(tmp_path: Path) -> None:
    """Its own run_many keeps `parallelism` for the batch; a mix runs a call per thread."""
    routing, command, github = router(tmp_path)
    ended: list[int] = []
    results = routing.run_many(
        [call(), call(), call()], parallelism=2, on_done=lambda index, _: ended.append(index)
    )
    assert [r.output for r in results] == ["command"] * 3
    assert command.made[0].batches == [3] and sorted(ended) == [0, 1, 2]
    mixed = routing.run_many([call(), call(WORKFLOW), call()], parallelism=2)
    assert [r.output for r in mixed] == ["command", "github-actions", "command"]  # in order
    assert command.made[0].batches == [3] and len(command.made[0].calls) == 5
    assert len(github.made[0].calls) == 1


def test_a_call_of_a_type_no_longer_installed_fails_naming_it(tmp_path: Path) -> None:
    routing, _, _ = router(tmp_path)
    routing.types = {"command": routing.types["command"]}
    failed = routing.run(call(WORKFLOW))
    assert failed.exit_code is None and failed.final and not failed.succeeded
    assert failed.error == "no installed driver type 'github-actions' (installed: command)"
    batch = routing.run_many([call(WORKFLOW), call(WORKFLOW)], parallelism=2)
    assert [result.error for result in batch] == [failed.error, failed.error]
    with pytest.raises(UnknownDriverError):
        routing.runner("github-actions")
