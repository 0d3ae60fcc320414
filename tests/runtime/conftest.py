"""Fixtures for run tests: a world (repo + journal) and a workspace on a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.engine.ports import StateStore
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, {})


@pytest.fixture
def store() -> StateStore:
    return MemoryStore()


@pytest.fixture
def workspace(world: World, store: StateStore) -> Iterator[Workspace]:
    opened = world.workspace(store)
    yield opened
    opened.source.close()
