"""What a driver type is: the protocol every driver, built in or a plugin, implements.

Pipeline: load (a component's `driver:` block validated by its type's `settings`) -> execute
(each step's `ports.DriverCall` handed to the runner its type made). The registry
(`adapters.driver_registry`) finds the types through the `gitopsd.drivers` entry points, so
adding one is a module and an entry point: nothing here or in the run engine changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gitopsd.engine.ports import DriverRunner
from gitopsd.model.manifests import DriverSettings


@dataclass(frozen=True)
class DriverSetup:
    """What gitopsd gives a driver type to make its runner with."""

    work_dir: Path  # private (0700) folder for the files of the calls in progress


class DriverType(Protocol):
    """One kind of driver, as a component's `driver: {type: <name>}` names it.

    `settings` validates the rest of that block (a `DriverSettings` subclass whose `type` is
    `Literal[<name>]`); a run hands each of the component's calls (plan, apply, destroy,
    check, health) to the runner `runner` made, once per process and on first use. The
    runner answers `DriverResult`s: the exit code (plan and check: 0 no changes, 2 changes),
    the output (the summary shown to users), and for apply the outputs object.
    """

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> type[DriverSettings]: ...

    def runner(self, setup: DriverSetup) -> DriverRunner: ...


def settings_of(types: Mapping[str, DriverType]) -> dict[str, type[DriverSettings]]:
    """The settings model of each type by name: what a load validates `driver:` blocks with."""
    return {name: kind.settings for name, kind in types.items()}
