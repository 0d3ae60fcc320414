"""Helpers for the example-repo tests: paths, and fakeinfra run the way gitopsd runs a driver."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gitrepos import export_example


def driver_env(**values: str) -> dict[str, str]:
    """The process environment without inherited protocol variables or demo switches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITOPSD_", "FAKEINFRA_"))}
    return env | values


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    return driver_env


@dataclass
class Driver:
    """One component (env dev, component network) with its inputs, state and outputs paths."""

    cwd: Path
    inputs_path: Path
    state_dir: Path
    outputs_path: Path
    environment: str = "dev"
    component: str = "network"

    @property
    def state_path(self) -> Path:
        return self.state_dir / "resources.json"

    def set_inputs(self, inputs: Any) -> None:
        self.inputs_path.write_text(json.dumps(inputs), encoding="utf-8")

    def outputs(self) -> Any:
        return json.loads(self.outputs_path.read_text(encoding="utf-8"))

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        protocol = dict(
            GITOPSD_ENVIRONMENT=self.environment,
            GITOPSD_COMPONENT=self.component,
            GITOPSD_REVISION="0123456789abcdef0123456789abcdef01234567",
            GITOPSD_ACTION=args[0],
            GITOPSD_INPUTS=str(self.inputs_path),
            GITOPSD_OUTPUTS=str(self.outputs_path),
            GITOPSD_STATE_DIR=str(self.state_dir),
            FAKEINFRA_OUTPUTS="vnet_id subnet_ids",
        )
        env = driver_env(**(protocol | extra_env))
        argv = [sys.executable, "../_lib/fakeinfra.py", *args]
        return subprocess.run(argv, cwd=self.cwd, env=env, capture_output=True, text=True)


def make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """A read-only copy of the committed `components/`, like the revision checkout gitopsd
    runs drivers in."""
    root = export_example(tmp_path / "checkout", "components")
    make_read_only(root)
    yield root
    make_writable(root)


@pytest.fixture
def driver(tmp_path: Path, checkout: Path) -> Driver:
    work = tmp_path / "gitopsd"
    (work / "state").mkdir(parents=True)
    found = Driver(
        cwd=checkout / "components" / "network",
        inputs_path=work / "inputs.json",
        state_dir=work / "state",
        outputs_path=work / "outputs.json",
    )
    found.set_inputs({"region": "westeurope", "node_count": 3, "subnets": ["nodes", "ingress"]})
    return found
