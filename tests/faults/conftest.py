"""Fixtures of the fault suite: a world (repository, driver journal), a data folder on a
disk that can be made full or read-only, and the daemon fixtures of tests/daemon (a real
`gitopsd serve`, an in-process daemon)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import daemon, started
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


__all__ = ["daemon", "disk", "started", "world"]
