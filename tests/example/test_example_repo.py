"""The bundled example repo loads, validates and runs through the real engine.

The example is committed into a fresh git repository (gitopsd reads commits, not working
trees), loaded with `runtime.runs.revisions.load`, and one environment is applied end to end by
running each driver exactly as SPEC section 4 describes, with inputs rendered by the engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gitopsd.engine import rendering, selection
from gitopsd.engine.loading import Repository
from gitopsd.model.manifests import CommandDriver
from gitopsd.runtime.runs import revisions
from tests.gitrepos import commit_example


@pytest.fixture(scope="module")
def example_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example as committed, in a repository of its own (never the working tree)."""
    return commit_example(tmp_path_factory.mktemp("example") / "repo")


@pytest.fixture(scope="module")
def example(example_root: Path) -> Iterator[Repository]:
    root = example_root
    with revisions.open_source(str(root), branch=None, data_dir=root / ".gitopsd") as source:
        loaded = revisions.load(source)
    assert loaded.problems == []
    yield loaded.repository


def names(repository: Repository, environment: str) -> list[str]:
    return [c.manifest.name for c in selection.select(repository, environment).components]


def test_the_promotion_chain_is_dev_staging_prod(example: Repository) -> None:
    upstreams = {n: e.manifest.upstream for n, e in example.environments.items()}
    assert upstreams == {"dev": None, "staging": "dev", "prod": "staging"}
    prod = example.environments["prod"].manifest.spec
    assert prod.approvals.required == 2
    assert [w.kind for w in prod.windows] == ["deny"]


def test_each_environment_gets_the_layered_graph(example: Repository) -> None:
    full = ["network", "clusters", "ingress", "monitoring", "platform"]
    assert names(example, "staging") == full
    assert names(example, "prod") == full
    assert names(example, "dev") == [n for n in full if n != "monitoring"]  # its `when`


def test_every_script_a_driver_or_gate_names_exists_and_is_executable(
    example: Repository, example_root: Path
) -> None:
    paths = {
        example_root / g.command[0]
        for e in example.environments.values()
        for g in e.manifest.spec.gates
    }
    for component in example.components.values():
        driver = component.manifest.spec.driver
        assert isinstance(driver, CommandDriver)
        for command in (driver.plan, driver.apply, driver.destroy, driver.check, driver.health):
            paths |= {example_root / component.folder / arg for arg in command or () if "/" in arg}
    assert {p.name for p in paths} == {"fakeinfra.py", "smoke.sh"}
    for path in paths:
        assert path.is_file() and os.access(path, os.X_OK), path


def test_the_smoke_gate_passes_and_fails_on_demand(
    example_root: Path, clean_env: Callable[..., dict[str, str]]
) -> None:
    def run_gate(**env: str) -> subprocess.CompletedProcess[str]:
        command = ["environments/checks/smoke.sh"]
        return subprocess.run(
            command, cwd=example_root, env=clean_env(**env), capture_output=True, text=True
        )

    revision = "0" * 40
    passed = run_gate(GITOPSD_ENVIRONMENT="staging", GITOPSD_REVISION=revision)
    assert passed.returncode == 0 and "staging" in passed.stdout
    failed = run_gate(
        GITOPSD_ENVIRONMENT="prod", GITOPSD_REVISION=revision, FAKEINFRA_FAIL="prod/gate:smoke"
    )
    assert failed.returncode == 1 and "FAKEINFRA_FAIL" in failed.stderr
    assert run_gate(GITOPSD_ENVIRONMENT="dev").returncode != 0


def run_driver(
    command: tuple[str, ...] | None,
    *,
    action: str,
    protocol: dict[str, str],
    cwd: Path,
    env: dict[str, str],
) -> int:
    """Run one driver call as gitopsd would; `python3` is this interpreter."""
    assert command is not None
    argv = [sys.executable if command[0] == "python3" else command[0], *command[1:]]
    variables = env | protocol | {"GITOPSD_ACTION": action}
    return subprocess.run(argv, cwd=cwd, env=variables, capture_output=True).returncode


def test_staging_applies_in_order_with_outputs_flowing_and_is_then_in_sync(
    example: Repository, checkout: Path, tmp_path: Path, clean_env: Callable[..., dict[str, str]]
) -> None:
    environment = example.environments["staging"]
    outputs: dict[str, dict[str, Any]] = {}
    for component in selection.select(example, "staging").components:
        name = component.manifest.name
        scope = selection.scope_for(environment, name, revision=example.revision, outputs=outputs)
        driver = component.manifest.spec.driver
        assert isinstance(driver, CommandDriver)
        work = tmp_path / name
        (work / "state").mkdir(parents=True)
        inputs = rendering.render(component.manifest.spec.inputs, scope)
        (work / "inputs.json").write_text(json.dumps(inputs))
        protocol = {
            "GITOPSD_ENVIRONMENT": "staging",
            "GITOPSD_COMPONENT": name,
            "GITOPSD_REVISION": example.revision,
            "GITOPSD_INPUTS": str(work / "inputs.json"),
            "GITOPSD_OUTPUTS": str(work / "outputs.json"),
            "GITOPSD_STATE_DIR": str(work / "state"),
        }
        call = {
            "protocol": protocol,
            "cwd": checkout / component.folder,
            "env": clean_env(**driver.env),
        }
        assert run_driver(driver.apply, action="apply", **call) == 0, name
        outputs[name] = json.loads((work / "outputs.json").read_text())
        assert run_driver(driver.check or driver.plan, action="check", **call) == 0, name
        if driver.health:
            assert run_driver(driver.health, action="health", **call) == 0, name
    assert outputs["platform"]["release"] == example.revision
    assert outputs["clusters"]["cluster_endpoint"]
