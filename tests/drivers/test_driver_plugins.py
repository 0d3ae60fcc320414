"""A driver type added by one module and one entry point, as a third party would add it.

`example_driver/` is a distribution as pip would install it: the module and a `*.dist-info`
whose `entry_points.txt` names it in the `gitopsd.drivers` group. Put on `PYTHONPATH`, a real
`gitopsd` process finds it through `importlib.metadata`, like the built-in types.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.gitrepos import commit_files

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "example_driver"
BROKEN = HERE / "broken_driver"
ENVIRONMENT = """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata: {name: dev}
spec:
  variables: {region: westeurope}
"""
NETWORK = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {name: net, layer: network}
spec:
  inputs: {region: "${{ vars.region }}"}
  driver: {type: record, file: net.json, outputs: {id: net-1}}
"""
CLUSTER = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {name: k8s, layer: clusters}
spec:
  depends_on: [net]
  inputs: {network: "${{ components.net.outputs.id }}"}
  driver:
    type: record
"""


def gitopsd(
    repo: Path, *args: str, plugins: tuple[Path, ...] = (EXAMPLE,)
) -> subprocess.CompletedProcess[str]:
    """`gitopsd ARGS` on `repo` with the plugin folders installed (on PYTHONPATH)."""
    paths = [*map(str, plugins), os.environ.get("PYTHONPATH", "")]
    where = [] if args[0] == "schema" else ["--repo", str(repo)]
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", *args, *where],
        cwd=repo.parent,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    files = {
        "environments/dev.yaml": ENVIRONMENT,
        "components/net/component.yaml": NETWORK,
        "components/k8s/component.yaml": CLUSTER,
    }
    commit_files(tmp_path / "repo", files)
    return tmp_path / "repo"


def test_validate_accepts_components_using_an_installed_plugin(repo: Path) -> None:
    done = gitopsd(repo, "validate")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_apply_calls_the_plugin_and_its_outputs_reach_a_dependent(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    done = gitopsd(repo, "apply", "--env", "dev", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    state = data / "state" / "dev"
    assert json.loads((state / "net" / "net.json").read_text()) == {"region": "westeurope"}
    assert json.loads((state / "k8s" / "record.json").read_text()) == {"network": "net-1"}
    shown = gitopsd(repo, "status", "--env", "dev", "--output", "json", "--data-dir", str(data))
    assert shown.returncode == 0, shown.stderr
    assert '"net-1"' in shown.stdout  # net's outputs, stored like any driver's


def test_an_unknown_driver_type_is_located_and_the_known_types_named(repo: Path) -> None:
    commit_files(repo, {"components/k8s/component.yaml": CLUSTER.replace("record", "recrod")})
    done = gitopsd(repo, "validate")
    assert done.returncode == 1
    expected = (
        "components/k8s/component.yaml:8: spec.driver.type: unknown type 'recrod'; "
        "expected one of 'command', 'github-actions', 'record'"
    )
    assert expected in done.stdout


def test_a_plugin_validates_its_own_settings_at_their_line(repo: Path) -> None:
    broken = NETWORK.replace("file: net.json", "file: ../net.json, colour: blue")
    commit_files(repo, {"components/net/component.yaml": broken})
    done = gitopsd(repo, "validate")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("components/net/component.yaml:6: spec.driver.file: ") for line in lines
    )
    assert "components/net/component.yaml:6: spec.driver.colour: unknown field" in lines


def test_without_the_plugin_its_type_is_unknown(repo: Path) -> None:
    done = gitopsd(repo, "validate", plugins=())
    assert done.returncode == 1
    assert "unknown type 'record'; expected one of 'command', 'github-actions'" in done.stdout


def test_a_plugin_that_fails_to_import_is_one_line_naming_it(repo: Path) -> None:
    done = gitopsd(repo, "validate", plugins=(EXAMPLE, BROKEN))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "gitopsd: error: driver plugin 'broken' (gitopsd_broken_driver:DRIVER) cannot be "
        "loaded: ModuleNotFoundError: No module named 'gitopsd_missing_dependency'"
    ]


def test_the_docs_show_the_example_driver_as_it_is() -> None:
    docs = (HERE.parent.parent / "docs" / "drivers.md").read_text(encoding="utf-8")
    source = (EXAMPLE / "gitopsd_record_driver.py").read_text(encoding="utf-8")
    assert f"```python\n{source}```" in docs


def test_the_schema_describes_the_plugins_settings(repo: Path) -> None:
    done = gitopsd(repo, "schema")
    assert done.returncode == 0, done.stderr
    validator = jsonschema.Draft202012Validator(json.loads(done.stdout))
    assert validator.is_valid(yaml.safe_load(CLUSTER))
    assert not validator.is_valid(yaml.safe_load(CLUSTER.replace("type: record", "type: recrod")))
