"""The repo most command tests run against: the layered example of tests/runtime (net, dns ->
k8s -> app in dev), committed, with the test driver's control file in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, layered())
