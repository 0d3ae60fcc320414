"""`gitopsd schema --kind KIND`: one schema per kind of file, for editors' modelines, that names
a misspelled field instead of saying which kind was expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.cli.test_graph_and_schema import FILES, gitopsd

ROOT = Path(__file__).resolve().parents[2]


def kind_schema(kind: str, cwd: Path) -> dict[str, Any]:
    done = gitopsd("schema", "--kind", kind, cwd=cwd)
    assert done.returncode == 0, done.stderr
    schema: dict[str, Any] = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def messages(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_a_misspelled_component_field_is_named(tmp_path: Path) -> None:
    component = yaml.safe_load(FILES["components/k8s/component.yaml"])
    component["spec"]["depends_ob"] = ["net"]
    found = messages(kind_schema("component", tmp_path), component)
    assert found == ["Additional properties are not allowed ('depends_ob' was unexpected)"]


def test_a_misspelled_environment_field_is_named(tmp_path: Path) -> None:
    environment = yaml.safe_load(FILES["environments/dev.yaml"])
    environment["spec"]["aprovals"] = {"required": 1}
    found = messages(kind_schema("environment", tmp_path), environment)
    assert found == ["Additional properties are not allowed ('aprovals' was unexpected)"]


def test_the_config_schema_checks_gitopsd_yaml(tmp_path: Path) -> None:
    schema = kind_schema("config", tmp_path)
    settings = yaml.safe_load((ROOT / "gitopsd.yaml").read_text())
    assert messages(schema, settings) == []
    assert messages(schema, {**settings, "layers": []}) == ["[] should be non-empty"]
    typo = messages(schema, {**settings, "notification": []})
    assert typo == ["Additional properties are not allowed ('notification' was unexpected)"]


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("component", "components/**/component.yaml"),
        ("environment", "environments/*.yaml"),
        ("config", "gitopsd.yaml"),
    ],
)
def test_each_kind_accepts_the_bundled_example(tmp_path: Path, kind: str, pattern: str) -> None:
    schema = kind_schema(kind, tmp_path)
    files = sorted(ROOT.glob(pattern))
    assert files
    for path in files:
        assert messages(schema, yaml.safe_load(path.read_text())) == [], path


def test_a_kind_refuses_the_other_kinds(tmp_path: Path) -> None:
    component = yaml.safe_load(FILES["components/net/component.yaml"])
    assert messages(kind_schema("environment", tmp_path), component)
    environment = yaml.safe_load(FILES["environments/dev.yaml"])
    assert messages(kind_schema("component", tmp_path), environment)


def test_an_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    done = gitopsd("schema", "--kind", "settings", cwd=tmp_path)
    assert done.returncode == 64
    assert "'settings' is not one of 'component', 'environment', 'config'" in done.stderr
    assert done.stdout == ""
