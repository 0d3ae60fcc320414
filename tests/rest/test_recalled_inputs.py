"""Secret-named inputs kept only as a hash, rendered again for the calls that use what a
component was applied with: a rollback renders them from the outputs its dependencies had
before the run, not the ones the run gave them. A real git repository, real subprocess
drivers, and the sealing store over a real (in-memory) store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography.fernet import Fernet

from gitopsd.adapters.encryption import Sealer
from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.sealed_store import SealedStore
from gitopsd.model.state import RunStatus, kept_hash
from tests.runtime.world import World, component, environment


def files(size: int) -> dict[str, str]:
    """net's outputs hold what it was given (`seen`); k8s's secret-named input reads them."""
    return {
        "environments/dev.yaml": environment("dev", variables={"size": size}),
        "components/net/component.yaml": component("net", inputs={"size": "${{ vars.size }}"}),
        "components/k8s/component.yaml": component(
            "k8s",
            layer="clusters",
            deps=("net",),
            inputs={"net_token": "${{ components.net.outputs.seen }}"},
        ),
    }


def test_a_rollback_renders_a_secret_input_from_the_outputs_before_the_run(
    tmp_path: Path,
) -> None:
    world = World.committed(tmp_path, {})
    sealer = Sealer(key=Fernet.generate_key().decode(), data_dir=tmp_path / "data")
    store = SealedStore(MemoryStore(), sealer)
    workspace = dataclasses.replace(world.workspace(store), digest=sealer.digest)
    first = world.commit(files(size=3))
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    k8s = store.get_component("dev", "k8s")
    assert k8s is not None and kept_hash(k8s.inputs["net_token"])  # kept only as a hash

    second = world.commit(files(size=9))  # net's outputs change, then k8s fails
    world.control(fail={f"k8s:apply@{second}": -1})
    run = workspace.apply("dev")

    assert run.status is RunStatus.FAILED and "rolled back" in (run.error or ""), run.error
    back = [e for e in world.journal() if e["revision"] == first and e["action"] == "apply"]
    assert [e["component"] for e in back][-2:] == ["k8s", "net"]  # dependents first
    assert back[-2]["inputs"] == {"net_token": {"size": 3}}  # as k8s was applied before
    workspace.source.close()
