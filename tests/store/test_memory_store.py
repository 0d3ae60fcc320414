"""The in-memory store passes the same contract as the SQLite one (minus sharing between
processes, which memory cannot do)."""

from __future__ import annotations

import pytest

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.engine.ports import StateStore
from tests.store.contract import OpenStore, StoreContract


class TestMemoryStoreContract(StoreContract):
    shared_between_processes = False

    @pytest.fixture
    def reopen(self) -> OpenStore:
        store = MemoryStore()
        return lambda: store  # "reopening" memory is the same store

    @pytest.fixture
    def store(self, reopen: OpenStore) -> StateStore:
        return reopen()
