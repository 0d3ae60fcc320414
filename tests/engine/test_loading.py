"""Loading manifests from file contents: models, line numbers, the environment template."""

from __future__ import annotations

import gc
import weakref

import pytest
import yaml

from gitopsd.engine import loading, validation
from gitopsd.engine.sources import Problem
from tests.drivers import DRIVER_TYPES

COMPONENT = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata:
  name: {name}
  layer: {layer}
spec:
  depends_on: {deps}
  driver:
    type: command
    plan: ./plan.sh --detailed
    apply: ["./apply.sh"]
  timeout: 1h30m
  retry: {{attempts: 3, backoff: 2s, max_backoff: 1m}}
"""
ENVIRONMENT = """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata:
  name: {name}
spec:
  variables: {{size: 3}}
"""


def component(name: str, layer: str = "network", deps: str = "[]") -> str:
    return COMPONENT.format(name=name, layer=layer, deps=deps)


def load(files: dict[str, str]) -> tuple[loading.Repository, list[Problem]]:
    encoded = {path: text.encode() for path, text in files.items()}
    repository, problems = loading.load_repository(
        encoded, revision="abc123", driver_types=DRIVER_TYPES
    )
    return repository, problems + validation.validate(repository)


def test_fields_are_parsed_into_engine_values() -> None:
    repository, problems = load({"components/net/component.yaml": component("net")})
    assert problems == []
    entry = repository.components["net"]
    spec = entry.manifest.spec
    assert entry.folder == "components/net"
    assert spec.driver.plan == ("./plan.sh", "--detailed")
    assert spec.timeout == 5400.0
    assert (spec.retry.attempts, spec.retry.backoff, spec.retry.max_backoff) == (3, 2.0, 60.0)


def test_a_wrong_field_is_reported_at_its_own_line() -> None:
    text = component("net").replace("  timeout: 1h30m", "  timeout: soon")
    _, problems = load({"components/net/component.yaml": text})
    assert [str(p) for p in problems] == [
        "components/net/component.yaml:12: spec.timeout: invalid duration 'soon': "
        "use a number with s, m or h, e.g. 90s, 15m, 1h30m"
    ]


def test_a_duration_of_the_wrong_kind_is_named_as_a_duration() -> None:
    text = component("net").replace("  timeout: 1h30m", "  timeout: [1, 2]")
    _, problems = load({"components/net/component.yaml": text})
    assert [str(p) for p in problems] == [
        "components/net/component.yaml:12: spec.timeout: expected a duration such as 90s, 15m"
        " or 1h30m (or a number of seconds), got a list"
    ]


def test_a_missing_field_is_reported_at_its_parent() -> None:
    text = component("net").replace('    apply: ["./apply.sh"]\n', "")
    _, problems = load({"components/net/component.yaml": text})
    assert [str(p) for p in problems] == [
        "components/net/component.yaml:8: spec.driver.apply: required field is missing"
    ]


def test_every_problem_of_every_file_is_reported_at_once() -> None:
    files = {
        "components/a/component.yaml": component("a").replace("kind: Component", "kind: Compnent"),
        "components/b/component.yaml": component("B"),
        "environments/dev.yaml": ENVIRONMENT.format(name="dev") + "  parallelism: 0\n",
    }
    _, problems = load(files)
    assert [(p.path, p.line) for p in problems] == [
        ("components/a/component.yaml", 2),
        ("components/b/component.yaml", 4),
        ("environments/dev.yaml", 7),
    ]


def test_the_environment_template_is_merged_under_each_environment() -> None:
    settings = (
        "layers: [network]\ndefaults:\n  parallelism: 7\n  variables: {region: eu, size: 1}\n"
    )
    repository, problems = load(
        {"gitopsd.yaml": settings, "environments/dev.yaml": ENVIRONMENT.format(name="dev")}
    )
    assert problems == []
    spec = repository.environments["dev"].manifest.spec
    assert spec.parallelism == 7
    assert spec.variables == {"region": "eu", "size": 3}


def test_an_error_in_the_template_is_reported_once_in_gitopsd_yaml() -> None:
    settings = "defaults:\n  parallelism: -1\n"
    files = {"gitopsd.yaml": settings}
    files |= {f"environments/{e}.yaml": ENVIRONMENT.format(name=e) for e in ("dev", "prod")}
    _, problems = load(files)
    assert [str(p) for p in problems] == [
        "gitopsd.yaml:2: defaults.parallelism: Input should be greater than or equal to 1 (got -1)"
    ]


def test_yaml_dates_are_not_json_values() -> None:
    text = ENVIRONMENT.format(name="dev").replace("{size: 3}", "{since: 2024-01-01}")
    _, problems = load({"environments/dev.yaml": text})
    assert len(problems) == 1
    assert problems[0].line == 6
    assert problems[0].message.startswith("spec.variables.since")


@pytest.mark.parametrize(
    "path",
    [
        "gitopsd.yaml",
        "environments/dev.yaml",
        "environments/x.yml",
        "components/a/b/component.yaml",
    ],
)
def test_manifest_paths(path: str) -> None:
    assert loading.is_manifest_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        "environments/checks/smoke.yaml",
        "components/a/values.yaml",
        "component.yaml",
        "other/component.yaml",
    ],
)
def test_other_paths_are_not_manifests(path: str) -> None:
    assert not loading.is_manifest_path(path)


def test_revisions_share_the_parse_of_an_unchanged_file() -> None:
    first, _ = load({"components/net/component.yaml": component("net")})
    second, _ = load({"components/net/component.yaml": component("net")})
    assert second.components["net"].source is first.components["net"].source


def test_the_parse_of_a_file_no_revision_holds_is_let_go() -> None:
    """A daemon's life of commits must not pile up every old version of every changed file."""
    repository, _ = load({"components/gone/component.yaml": component("gone")})
    parsed = weakref.ref(repository.components["gone"].source)
    del repository
    gc.collect()
    assert parsed() is None


def test_revisions_share_the_component_of_an_unchanged_file() -> None:
    """A new head builds models for its changed files only."""
    first, _ = load({"components/net/component.yaml": component("net")})
    second, _ = load(
        {
            "components/net/component.yaml": component("net"),
            "components/dns/component.yaml": component("dns"),
        }
    )
    assert second.components["net"] is first.components["net"]
    assert second.components["dns"].manifest.name == "dns"


def test_a_broken_component_is_reported_at_every_load() -> None:
    text = component("net").replace("  timeout: 1h30m", "  timeout: soon")
    files = {"components/net/component.yaml": text}
    _, first = load(files)
    _, again = load(files)
    assert [str(p) for p in again] == [str(p) for p in first] != []


def test_a_problem_found_after_loading_is_located_in_the_file() -> None:
    """The parsed YAML is not kept with the models: a check made later (an environment's,
    at plan time) still finds which fields the file writes and their lines."""
    load({"components/net/component.yaml": component("net")})
    repository, _ = load({"components/net/component.yaml": component("net")})  # shared entry
    source = repository.components["net"].source
    assert source.has(("spec", "timeout")) and not source.has(("spec", "when"))
    found = source.problem(("spec", "timeout"), "too long for dev")
    assert str(found) == "components/net/component.yaml:12: spec.timeout: too long for dev"


def test_a_revision_read_back_parsed_shares_the_components_read_from_git() -> None:
    """The revision cache hands loading the parsed files of a commit: a component whose file
    a revision in memory has already is that revision's, not a second copy."""
    text = component("net")
    first, _ = load({"components/net/component.yaml": text})
    documents = {"components/net/component.yaml": (text, yaml.safe_load(text))}
    again, problems = loading.load_parsed(documents, revision="def456", driver_types=DRIVER_TYPES)
    assert problems == [] and again.components["net"] is first.components["net"]


def test_a_changed_file_read_back_parsed_is_built_anew() -> None:
    first, _ = load({"components/net/component.yaml": component("net")})
    text = component("net", layer="platform")
    documents = {"components/net/component.yaml": (text, yaml.safe_load(text))}
    again, _ = loading.load_parsed(documents, revision="def456", driver_types=DRIVER_TYPES)
    assert again.components["net"].manifest.metadata.layer == "platform"
    assert first.components["net"].manifest.metadata.layer == "network"


def test_components_with_the_same_driver_block_share_its_settings() -> None:
    """Ten thousand components usually run a handful of driver blocks: one copy each."""
    other = component("dns").replace("./apply.sh", "./other.sh")
    repository, problems = load(
        {
            "components/net/component.yaml": component("net"),
            "components/vpc/component.yaml": component("vpc"),
            "components/dns/component.yaml": other,
        }
    )
    net, vpc, dns = (repository.components[n].manifest.spec.driver for n in ("net", "vpc", "dns"))
    assert problems == [] and net is vpc
    assert dns.command("apply") == ("./other.sh",) and net.command("apply") == ("./apply.sh",)


def test_a_component_changed_later_shares_the_driver_settings_of_the_others() -> None:
    """A daemon's life of commits must not make a copy of the settings for every component
    a commit changed (the memory benchmark's 1,000 commits each changed one)."""
    first, _ = load({f"components/{n}/component.yaml": component(n) for n in ("net", "vpc")})
    second, _ = load(
        {
            "components/net/component.yaml": component("net"),
            "components/vpc/component.yaml": component("vpc", layer="platform"),
        }
    )
    assert second.components["vpc"] is not first.components["vpc"]  # built anew
    driver = second.components["vpc"].manifest.spec.driver
    assert driver is first.components["net"].manifest.spec.driver


def test_the_driver_settings_no_revision_holds_are_let_go() -> None:
    text = component("gone").replace("./apply.sh", "./gone.sh")
    repository, _ = load({"components/gone/component.yaml": text})
    settings = weakref.ref(repository.components["gone"].manifest.spec.driver)
    del repository
    gc.collect()
    assert settings() is None


def test_the_same_broken_driver_block_is_reported_in_every_component() -> None:
    broken = {
        f"components/{name}/component.yaml": component(name).replace("apply: [", "aply: [")
        for name in ("net", "vpc")
    }
    _, problems = load(broken)
    net = [(p.line, p.message) for p in problems if p.path == "components/net/component.yaml"]
    vpc = [(p.line, p.message) for p in problems if p.path == "components/vpc/component.yaml"]
    assert net == vpc and (11, "spec.driver.aply: unknown field") in net


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b"])
def test_a_character_yaml_refuses_is_reported_on_its_line(character: str) -> None:
    text = ENVIRONMENT.format(name="dev").replace("{size: 3}", f"{{size: 3, note: a{character}b}}")
    _, problems = load({"environments/dev.yaml": text})
    assert [(p.path, p.line) for p in problems] == [("environments/dev.yaml", 6)]
    assert f"character #x{ord(character):04x} is not allowed" in problems[0].message
