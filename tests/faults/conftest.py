"""Fixtures of the fault suite: a world (repository, driver journal) and a data folder on a
disk that can be made full or read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.disks import Disk


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    made = Disk(tmp_path / "data")
    yield made
    made.close()
