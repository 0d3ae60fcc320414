"""The sealing store over each real store (memory, SQLite, PostgreSQL): sensitive values of
component records and of steps' rollback copies are kept encrypted in the wrapped store, read
back in clear by any host with the same key, and left sealed (never an error) without it;
secret-named inputs are kept only as a keyed hash, which no key reads back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gitopsd.adapters.encryption import Sealer, is_sealed, keyed_hash
from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.postgres_store import PostgresStore
from gitopsd.adapters.sealed_store import SealedStore, holds_sealed
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import ComponentState, kept_hash
from tests.store.contract import component, environment, run, step

KEY = Fernet.generate_key().decode()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    opened: StateStore
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = SqliteStore(tmp_path / "state.db")
    else:
        opened = PostgresStore(request.getfixturevalue("postgres_url"), timeout=20)
    yield opened
    opened.close()


Host = Callable[..., SealedStore]


@pytest.fixture
def host(inner: StateStore, tmp_path: Path) -> Host:
    """A host sharing `inner`, with its own data folder and the key it is given."""

    def make(name: str, *, key: str | None = KEY) -> SealedStore:
        return SealedStore(inner, Sealer(key=key, data_dir=tmp_path / name))

    return make


def secret_component() -> ComponentState:
    return component(
        "db",
        inputs={"db_password": "pw-1234", "url": "pg://admin:adm-5678@db", "size": 3},
        outputs={"admin_password": "adm-5678", "host": "db.internal"},
        sensitive_inputs=["db_password", "url"],  # url: rendered from a sensitive output
        hashed_inputs=["db_password"],  # rendered from the repository alone
        sensitive_outputs=["admin_password"],
    )


def test_sensitive_values_are_sealed_in_the_wrapped_store(inner: StateStore, host: Host) -> None:
    host("a").save_component(secret_component())

    raw = inner.get_component("dev", "db")
    assert raw is not None
    assert is_sealed(raw.inputs["url"]) and is_sealed(raw.outputs["admin_password"])
    digest = Sealer(key=KEY, data_dir=Path("unused")).digest
    assert kept_hash(raw.inputs["db_password"]) == keyed_hash(digest, "pw-1234")
    assert raw.inputs["size"] == 3 and raw.outputs["host"] == "db.internal"
    assert "pw-1234" not in raw.model_dump_json() and "adm-5678" not in raw.model_dump_json()


def test_a_host_with_the_same_key_reads_them_in_clear(host: Host) -> None:
    host("a").save_components([secret_component()])

    (read,) = host("b").list_components("dev")
    assert read.inputs["url"] == "pg://admin:adm-5678@db" and read.inputs["size"] == 3
    assert kept_hash(read.inputs["db_password"]) is not None  # a hash: no key reads it back
    assert read.outputs == {"admin_password": "adm-5678", "host": "db.internal"}


def test_a_host_with_another_key_reads_them_still_sealed(host: Host) -> None:
    host("a").save_component(secret_component())

    read = host("b", key=Fernet.generate_key().decode()).get_component("dev", "db")
    assert read is not None
    assert is_sealed(read.outputs["admin_password"])
    assert read.outputs["host"] == "db.internal"


def test_a_steps_rollback_copy_is_sealed_too(inner: StateStore, host: Host) -> None:
    inner.save_run(run())
    previous = secret_component()
    host("a").save_steps([step(0, previous_state=previous), step(1)])

    (raw, _) = inner.list_steps("run-1")
    assert raw.previous_state is not None
    assert is_sealed(raw.previous_state.outputs["admin_password"])
    assert kept_hash(raw.previous_state.inputs["db_password"]) is not None
    (read, plain) = host("b").list_steps("run-1")
    assert read.previous_state is not None and plain.previous_state is None
    assert read.previous_state.outputs == previous.outputs
    assert read.previous_state.inputs["url"] == previous.inputs["url"]


def test_a_store_holding_only_hashes_holds_values_of_the_key(inner: StateStore, host: Host) -> None:
    """A lost key file must not be replaced while hashes made with it are kept: a new key
    would make them unusable for good, as it would sealed values."""
    inner.save_environment(environment("dev"))
    assert not holds_sealed(inner)
    hashed_only = component(
        "app",
        inputs={"api_token": "tok-1", "size": 3},
        sensitive_inputs=["api_token"],
        hashed_inputs=["api_token"],
    )
    host("a").save_component(hashed_only)

    raw = inner.get_component("dev", "app")
    assert raw is not None and kept_hash(raw.inputs["api_token"]) is not None
    assert holds_sealed(inner)
