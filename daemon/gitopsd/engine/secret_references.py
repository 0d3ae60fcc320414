"""`${{ secrets.NAME }}` in a component's inputs and driver `env`: named, never held, until a call.

Pipeline: load -> render -> plan -> **execute**. Rendering leaves a secret reference as its
canonical text (`references.secret_marker`), so whatever stores or shows rendered inputs (the
component's state, steps, saved plans, events, diffs, the API) holds the secret's name, never
its value. Right before a driver runs, the runner (adapters/secrets.py) looks up the secrets
the component's own manifest references and puts their values in that call's inputs and `env`
only: another component's inputs, or a text an output carried in, are left as they are.
Planning folds a keyed hash of each value into the fingerprint (runtime/records/sensitivity.py),
so a rotated secret re-applies the components that use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from gitopsd.engine import rendering
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.references import ExpressionError, Scope, parse_reference
from gitopsd.engine.sources import Problem
from gitopsd.model.manifests import DriverSettings, GitHubActionsDriver

_MARKER = re.compile(r"\$\{\{ secrets\.([A-Za-z0-9_]+) \}\}")


def driver_env(component: ComponentEntry) -> Mapping[str, str]:
    """The driver's `env` setting, for driver types that have one (command)."""
    return driver_env_of(component.manifest.spec.driver)


def driver_env_of(driver: DriverSettings | None) -> Mapping[str, str]:
    env = getattr(driver, "env", None)
    return env if isinstance(env, Mapping) else {}


def rendered_env(env: Mapping[str, str]) -> dict[str, str]:
    """A driver's `env` with its secret references in their canonical spelling (and `$${{`
    escapes undone); validation allows no other reference there, so the scope is never read."""
    return {name: str(rendering.render(value, _NO_SCOPE)) for name, value in env.items()}


_NO_SCOPE = Scope(environment="", revision="", variables={})


def referenced(component: ComponentEntry) -> frozenset[str]:
    """The names of the secrets `component` references in its inputs and its driver's `env`."""
    return component.secret_names


def substitute(value: Any, secrets: Mapping[str, str]) -> Any:
    """A copy of `value` with each `${{ secrets.NAME }}` of a NAME in `secrets` replaced by
    its value, in every string at any depth; others are left as they are."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        return _MARKER.sub(lambda m: secrets.get(m.group(1), m.group(0)), value)
    if isinstance(value, Mapping):
        return {key: substitute(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        found = [substitute(item, secrets) for item in value]
        return found if isinstance(value, list) else tuple(found)
    return value


def check(repository: Repository) -> Iterator[Problem]:
    """What validation says of secret references beyond their spelling (which it checks
    with every reference): a driver's `env` takes secrets and nothing else (it is not
    rendered per environment), and a github-actions component takes none (GitHub shows a
    dispatch's inputs to anyone who can read the workflow run)."""
    for component in repository.components.values():
        yield from _check_env(component)
        if isinstance(component.manifest.spec.driver, GitHubActionsDriver):
            yield from _check_not_dispatched(component)


def _check_env(component: ComponentEntry) -> Iterator[Problem]:
    for name, value in driver_env(component).items():
        location = ("spec", "driver", "env", name)
        try:
            for placeholder in rendering.iter_placeholders(value):
                if parse_reference(placeholder.expression).root != "secrets":
                    message = "a driver's env takes only ${{ secrets.NAME }} references"
                    yield component.source.problem(location, message)
        except ExpressionError as error:  # RenderError is one
            yield component.source.problem(location, error.message)


def _check_not_dispatched(component: ComponentEntry) -> Iterator[Problem]:
    try:
        found = list(rendering.references_in(component.manifest.spec.inputs))
    except rendering.RenderError:
        return  # reported with every reference
    for path, reference in found:
        if reference.root == "secrets":
            message = (
                f"{reference.text}: a github-actions component cannot take a secret as an input"
                " (GitHub shows a dispatch's inputs with the run); keep it in GitHub's secrets"
            )
            yield component.source.problem(("spec", "inputs", *path), message)
