"""A gitopsd driver type in one module: `record` keeps a component's inputs in a file.

A component using it:

    driver: {type: record, file: desired.json, outputs: {id: net-1}}

apply writes the component's inputs (as JSON) to `file` in the component's state folder and
returns `outputs`; plan and check exit 2 while the file differs from the inputs (0 when it
matches); destroy removes the file; health succeeds once the file exists. It is registered by
one entry point, in the `gitopsd.drivers` group of its distribution:

    [project.entry-points."gitopsd.drivers"]
    record = "gitopsd_record_driver:DRIVER"
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import Field

from gitopsd.adapters.drivers import in_threads
from gitopsd.engine.drivers import DriverSetup
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, OnStarted
from gitopsd.model.manifests import DriverSettings

IN_SYNC, CHANGES = 0, 2  # plan and check: what every driver answers


class RecordSettings(DriverSettings):
    """The `driver:` block; gitopsd reports a mistake in it at its file and line."""

    type: Literal["record"]
    file: str = Field(default="record.json", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    outputs: dict[str, str] = Field(default_factory=dict)

    def unsupported(self, action: str) -> str | None:
        return None  # plan, apply, destroy, check and health: it runs them all


class RecordRunner:
    """Runs the calls of `record` components (a `DriverRunner`)."""

    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,  # told of a process group: this one starts none
    ) -> DriverResult:
        begun = time.monotonic()
        if not isinstance(call.driver, RecordSettings):
            return DriverResult(None, error="not a record driver call")
        path = call.state_dir / call.driver.file
        wanted = json.dumps(dict(call.inputs), indent=2, sort_keys=True, default=str)
        held = path.read_text() if path.exists() else None
        if call.action == "apply":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted)
            result = DriverResult(0, output=f"wrote {path.name}", outputs=call.driver.outputs)
        elif call.action == "destroy":
            path.unlink(missing_ok=True)
            result = DriverResult(0, output=f"removed {path.name}")
        elif call.action == "health":
            result = DriverResult(0 if held is not None else 1, output=f"{path.name} present")
        else:  # plan, check
            same = held == wanted
            result = DriverResult(IN_SYNC if same else CHANGES, output=f"{path.name} same: {same}")
        return dataclasses.replace(result, duration=time.monotonic() - begun)

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        """A drift check's calls, `parallelism` at once (gitopsd's thread helper)."""
        return in_threads(self.run, calls, parallelism=parallelism, cancel=cancel, on_done=on_done)


class RecordDriver:
    """The driver type the entry point names (`gitopsd.engine.drivers.DriverType`)."""

    name = "record"
    settings = RecordSettings

    def runner(self, setup: DriverSetup) -> RecordRunner:
        return RecordRunner()


DRIVER = RecordDriver()
