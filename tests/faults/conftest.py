"""Fixtures of the fault suite: a world (repository, driver journal), a data folder on a
disk that can be made full or read-only, the daemon fixtures of tests/daemon (a real
`gitopsd serve`, an in-process daemon), and `daemons`, real ones a test starts itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import daemon, started
from tests.daemon.harness import DaemonProcess
from tests.faults.disks import Disk
from tests.runtime.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A repository with nothing committed yet but the test driver."""
    return World.committed(tmp_path, {})


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    made = Disk(tmp_path / "data")
    yield made
    made.close()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """`gitopsd serve` processes a test starts (appended here), stopped after it."""
    started: list[DaemonProcess] = []
    yield started
    for process in started:
        process.stop()


__all__ = ["daemon", "daemons", "disk", "started", "world"]
