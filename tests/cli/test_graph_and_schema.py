"""`gitopsd graph` and `gitopsd schema`, run as a user runs them: the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.gitrepos import commit_files

ENVIRONMENT = """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata: {{name: {name}}}
spec:
  variables: {{tier: {name}}}
  components: {{include: {include}}}
"""
COMPONENT = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {{name: {name}, layer: {layer}}}
spec:
  depends_on: {deps}
  when: {when}
  driver: {{type: command, plan: ./plan.sh, apply: ./apply.sh}}
"""


def component(name: str, layer: str, deps: str = "[]", when: str = "null") -> str:
    return COMPONENT.format(name=name, layer=layer, deps=deps, when=when)


FILES = {
    "environments/dev.yaml": ENVIRONMENT.format(name="dev", include="null"),
    "environments/prod.yaml": ENVIRONMENT.format(name="prod", include="[network, clusters, web]"),
    "components/net/component.yaml": component("net", "network"),
    "components/k8s/component.yaml": component("k8s", "clusters", "[net]"),
    "components/dns/component.yaml": component("dns", "network"),
    "components/web/component.yaml": component("web", "platform", "[k8s, dns]"),
    "components/debug/component.yaml": component(
        "debug", "platform", "[k8s]", "\"env.name == 'dev'\""
    ),
}


def gitopsd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    commit_files(tmp_path / "repo", FILES)
    return tmp_path / "repo"


def test_json_lists_the_environment_components_in_a_valid_apply_order(repo: Path) -> None:
    done = gitopsd("graph", "--env", "dev", "--format", "json", cwd=repo)
    assert done.returncode == 0, done.stderr
    graph = json.loads(done.stdout)
    assert graph["environment"] == "dev"
    names = [c["name"] for c in graph["components"]]
    assert sorted(names) == ["debug", "dns", "k8s", "net", "web"]
    for entry in graph["components"]:
        assert set(entry) == {"name", "layer", "depends_on"}
        assert all(names.index(dep) < names.index(entry["name"]) for dep in entry["depends_on"])


def test_include_and_when_choose_the_components(repo: Path) -> None:
    done = gitopsd("graph", "--env", "prod", "--output", "json", cwd=repo)
    assert done.returncode == 0, done.stderr
    names = [c["name"] for c in json.loads(done.stdout)["components"]]
    assert sorted(names) == ["dns", "k8s", "net", "web"]  # by layer, by name; debug is dev-only


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ("text", "   3. k8s  [clusters]  after: net"),
        ("dot", '  "k8s" -> "web";'),
        ("mermaid", "  c_k8s --> c_web"),
    ],
)
def test_other_formats(repo: Path, view: str, expected: str) -> None:
    done = gitopsd("graph", "--env", "prod", "--format", view, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout.splitlines()


def test_unknown_environment_is_an_error(repo: Path) -> None:
    done = gitopsd("graph", "--env", "qa", cwd=repo)
    assert done.returncode == 1
    assert "unknown environment 'qa' (environments: dev, prod)" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_invalid_repo_cannot_be_graphed(repo: Path) -> None:
    broken = component("k8s", "clusters", "[net, ghost]")
    commit_files(repo, {"components/k8s/component.yaml": broken})
    done = gitopsd("graph", "--env", "dev", cwd=repo)
    assert done.returncode == 1
    assert "components/k8s/component.yaml:5: spec.depends_on[1]: depends on unknown" in done.stderr
    assert done.stdout == ""


def test_schema_is_draft_2020_12_and_accepts_valid_manifests_only(tmp_path: Path) -> None:
    done = gitopsd("schema", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path, text in FILES.items():
        assert validator.is_valid(yaml.safe_load(text)), path
    bad = yaml.safe_load(component("net", "network"))
    bad["spec"]["colour"] = "blue"
    assert not validator.is_valid(bad)
    bad = yaml.safe_load(FILES["environments/dev.yaml"])
    bad["kind"] = "Environmnet"
    assert not validator.is_valid(bad)


def test_schema_describes_the_notifications_of_gitopsd_yaml(tmp_path: Path) -> None:
    done = gitopsd("schema", cwd=tmp_path)
    schema = json.loads(done.stdout)
    settings = {**schema, "oneOf": [{"$ref": "#/$defs/RepoSettings"}]}
    validator = jsonschema.Draft202012Validator(settings)
    good: dict[str, Any] = {
        "apiVersion": "gitopsd.io/v1",
        "kind": "Settings",
        "notifications": [
            {"name": "chat", "url_env": "SLACK_WEBHOOK_URL", "format": "slack"},
            {
                "name": "audit",
                "url_env": "AUDIT_URL",
                "events": ["run_started", "run_failed"],
                "environments": ["prod"],
                "timeout": "10s",
                "retry": {"attempts": 3, "backoff": "2s"},
            },
        ],
    }
    assert validator.is_valid(good), list(validator.iter_errors(good))
    for field, value in [("events", ["run_succeeded"]), ("format", "teams"), ("url", "x")]:
        bad = {**good, "notifications": [{**good["notifications"][0], field: value}]}
        assert not validator.is_valid(bad), field
    missing = {**good, "notifications": [{"name": "chat"}]}
    assert not validator.is_valid(missing)
    described = schema["$defs"]["Notification"]["properties"]["url_env"]["description"]
    assert "environment variable" in described
