"""Sensitive inputs given back to the calls that use what a component was applied with: a
secret-named input rendered from the repository alone is kept only as a hash and rendered
again from the manifests of the revision the component was applied at; one that reads a
dependency's output is kept encrypted, since the output may change. A real git repository,
real subprocess drivers, and the sealing store over a real (in-memory) store."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from gitopsd.adapters.encryption import Sealer, is_sealed
from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.sealed_store import SealedStore
from gitopsd.model.state import ComponentState, DriftStatus, RunStatus, kept_hash
from gitopsd.runtime.drift import drifting
from gitopsd.runtime.runs import recalling
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.world import World, component, environment


@dataclasses.dataclass
class Sealed:
    raw: MemoryStore  # what the store keeps
    workspace: Workspace


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, {})


@pytest.fixture
def sealed(world: World, tmp_path: Path) -> Iterator[Sealed]:
    raw = MemoryStore()
    sealer = Sealer(key=Fernet.generate_key().decode(), data_dir=tmp_path / "data")
    workspace = dataclasses.replace(world.workspace(SealedStore(raw, sealer)), digest=sealer.digest)
    yield Sealed(raw, workspace)
    workspace.source.close()


def layered(size: int, *, with_k8s: bool = True) -> dict[str, str]:
    """net's outputs hold what it was given (`seen`); k8s's secret-named input reads them."""
    k8s = component(
        "k8s",
        layer="clusters",
        deps=("net",),
        inputs={"net_token": "${{ components.net.outputs.seen }}"},
    )
    return {
        "environments/dev.yaml": environment("dev", variables={"size": size}, prune=True),
        "components/net/component.yaml": component("net", inputs={"size": "${{ vars.size }}"}),
        **({"components/k8s/component.yaml": k8s} if with_k8s else {}),
    }


def applied_with(world: World, name: str, action: str) -> list[dict[str, Any]]:
    return [e["inputs"] for e in world.journal() if (e["component"], e["action"]) == (name, action)]


def test_a_secret_input_read_from_an_output_is_rolled_back_as_it_was(
    world: World, sealed: Sealed
) -> None:
    first = world.commit(layered(size=3))
    assert sealed.workspace.apply("dev").status is RunStatus.SUCCEEDED
    raw = sealed.raw.get_component("dev", "k8s")
    assert raw is not None and is_sealed(raw.inputs["net_token"])  # encrypted, not hashed

    second = world.commit(layered(size=9))  # net's outputs change, then k8s fails
    world.control(fail={f"k8s:apply@{second}": -1})
    run = sealed.workspace.apply("dev")

    assert run.status is RunStatus.FAILED and "rolled back" in (run.error or ""), run.error
    back = [e for e in world.journal() if e["revision"] == first and e["action"] == "apply"]
    assert [e["component"] for e in back][-2:] == ["k8s", "net"]  # dependents first
    assert back[-2]["inputs"] == {"net_token": {"size": 3}}  # as k8s was applied before


def test_a_pruned_component_is_destroyed_with_the_secret_it_was_applied_with(
    world: World, sealed: Sealed
) -> None:
    """k8s leaves git in the commit that changes net's outputs: its destroy is given the
    token it was applied with, not one rendered from net's new outputs."""
    world.commit(layered(size=3))
    assert sealed.workspace.apply("dev").status is RunStatus.SUCCEEDED

    world.commit(layered(size=9, with_k8s=False), replace=True)
    run = sealed.workspace.apply("dev")

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert applied_with(world, "k8s", "destroy") == [{"net_token": {"size": 3}}]


def checked(name: str, inputs: dict[str, str]) -> str:
    """A component of the test driver that also checks for drift."""
    manifest = json.loads(component(name, inputs=inputs))
    manifest["spec"]["driver"]["check"] = [sys.executable, "../../driver.py", "check"]
    return json.dumps(manifest)


def test_a_secret_input_is_rendered_at_the_revision_its_component_was_applied_at(
    world: World, sealed: Sealed
) -> None:
    """db keeps db_password only as a hash. The environment moves on (only app applied at
    the second commit, which also changes the password): db's drift check is given the
    password db was applied with."""

    def files(password: str, other: str) -> dict[str, str]:
        variables = {"password": password, "other": other}
        return {
            "environments/dev.yaml": environment("dev", variables=variables),
            "components/db/component.yaml": checked("db", {"db_password": "${{ vars.password }}"}),
            "components/app/component.yaml": checked("app", {"other": "${{ vars.other }}"}),
        }

    world.commit(files("pw-1", "a"))
    assert sealed.workspace.apply("dev").status is RunStatus.SUCCEEDED
    raw = sealed.raw.get_component("dev", "db")
    assert raw is not None and kept_hash(raw.inputs["db_password"])  # only a hash
    world.commit(files("pw-2", "b"))
    assert sealed.workspace.apply("dev", components=["app"]).status is RunStatus.SUCCEEDED

    report = drifting.check(sealed.workspace, "dev")

    db = next(c for c in report.components if c.name == "db")
    assert db.drift is DriftStatus.DRIFTED, db.summary  # the driver's "drifted": it ran
    assert applied_with(world, "db", "check") == [{"db_password": "pw-1"}]


def test_a_value_that_merely_looks_like_a_kept_hash_is_given_as_it_is() -> None:
    """Only the inputs the record names as hashed are rendered again: a plain input whose
    value happens to be `{"$hashed": ...}` is the user's, and reaches the driver."""
    state = ComponentState(
        environment="dev",
        name="app",
        revision="r1",
        fingerprint="f",
        inputs={"meta": {"$hashed": "user-data"}},
        updated_at=datetime.now(UTC),
    )
    assert recalling.recalled(state, manifests=None, digest=None) == state.inputs
