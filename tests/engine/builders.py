"""Small repositories built in memory, for engine tests that need loaded manifests."""

from __future__ import annotations

from gitopsd.engine import loading, validation
from gitopsd.engine.loading import Repository
from tests.drivers import DRIVER_TYPES

ENVIRONMENT = """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata: {{name: {name}}}
spec:
  variables: {variables}
"""
COMPONENT = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {{name: {name}, layer: {layer}}}
spec:
  depends_on: {deps}
  inputs: {inputs}
  driver: {{type: command, plan: ./plan.sh, apply: ./apply.sh}}
"""


def component(name: str, *, layer: str = "network", deps: str = "[]", inputs: str = "{}") -> str:
    return COMPONENT.format(name=name, layer=layer, deps=deps, inputs=inputs)


def environment(name: str, *, variables: str = "{}") -> str:
    return ENVIRONMENT.format(name=name, variables=variables)


def repository(files: dict[str, str], *, revision: str = "r1") -> Repository:
    """Load `files` as a revision; fails the test on any validation problem."""
    encoded = {path: text.encode() for path, text in files.items()}
    loaded, problems = loading.load_repository(
        encoded, revision=revision, driver_types=DRIVER_TYPES
    )
    problems += validation.validate(loaded)
    assert problems == [], [str(p) for p in problems]
    return loaded
