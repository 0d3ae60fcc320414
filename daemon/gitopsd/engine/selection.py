"""Which components belong to an environment, with which variables, in which order.

An environment takes the components its `components.include` names (components or whole
layers; all when omitted) whose `when` condition holds there. Every selected component's
dependencies must be selected too: gitopsd never applies a component without what it builds on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd.engine.conditions import parse_condition
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry, Repository
from gitopsd.engine.references import ExpressionError, Scope
from gitopsd.engine.sources import Problem


@dataclass(frozen=True)
class Selection:
    """The components of one environment, in apply order, and why any could not be chosen."""

    environment: EnvironmentEntry
    components: list[ComponentEntry]
    problems: list[Problem]

    def dependencies(self) -> dict[str, list[str]]:
        return {c.manifest.name: list(c.manifest.spec.depends_on) for c in self.components}


def named_twice(names: Iterable[str]) -> list[str]:
    """The component names a request gives more than once, sorted: refused, by the API and
    the command line alike (a slip, or a body made to be stored large). Counted, not
    searched: 50,000 names would be billions of comparisons."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


def variables_for(environment: EnvironmentEntry, component: str) -> Mapping[str, Any]:
    """The environment's variables with the component's overrides on top (read-only)."""
    spec = environment.manifest.spec
    overrides = spec.overrides.get(component)
    return {**spec.variables, **overrides} if overrides else spec.variables


def scope_for(
    environment: EnvironmentEntry,
    component: str,
    *,
    revision: str,
    outputs: dict[str, dict[str, Any]] | None = None,
) -> Scope:
    """What `${{ }}` references and `when` conditions of `component` see in `environment`."""
    return Scope(
        environment=environment.manifest.name,
        revision=revision,
        variables=variables_for(environment, component),
        outputs=outputs or {},
    )


def select(repository: Repository, environment: str) -> Selection:
    """The components of `environment` in apply order; a cycle raises DependencyCycleError."""
    chosen, problems = choose(repository, environment)
    ordered = [chosen[name] for name in repository.dependency_order if name in chosen]
    return Selection(repository.environments[environment], ordered, problems)


def choose(
    repository: Repository, environment: str
) -> tuple[dict[str, ComponentEntry], list[Problem]]:
    """The components of `environment` by name, unordered, and why any could not be chosen."""
    entry = repository.environments[environment]
    problems: list[Problem] = []
    chosen = {
        name: component
        for name, component in repository.components.items()
        if _is_included(entry, component) and _holds(entry, component, repository, problems)
    }
    for component in chosen.values():
        problems.extend(_missing_dependencies(entry, component, chosen, repository))
    return chosen, problems


def _is_included(environment: EnvironmentEntry, component: ComponentEntry) -> bool:
    include = environment.manifest.spec.components.include
    if include is None:
        return True
    metadata = component.manifest.metadata
    return metadata.name in include or metadata.layer in include


def _holds(
    environment: EnvironmentEntry,
    component: ComponentEntry,
    repository: Repository,
    problems: list[Problem],
) -> bool:
    """Evaluate `when`; a condition that cannot be evaluated is a problem and excludes it."""
    when = component.manifest.spec.when
    if when is None:
        return True

    name = component.manifest.name
    scope = scope_for(environment, name, revision=repository.revision)
    try:
        return parse_condition(when).evaluate(scope)
    except ExpressionError as error:
        where = f"in environment {environment.manifest.name!r}"
        problems.append(component.source.problem(("spec", "when"), f"{error} {where}"))
        return False


def _missing_dependencies(
    environment: EnvironmentEntry,
    component: ComponentEntry,
    chosen: dict[str, ComponentEntry],
    repository: Repository,
) -> list[Problem]:
    """Dependencies that exist but are not in this environment (unknown ones are reported
    once by validation, not once per environment)."""
    problems: list[Problem] = []
    depends_on = component.manifest.spec.depends_on
    if all(dependency in chosen for dependency in depends_on):
        return problems
    for index, dependency in enumerate(depends_on):
        if dependency not in chosen and dependency in repository.components:
            message = (
                f"depends on {dependency!r}, which environment "
                f"{environment.manifest.name!r} does not include (see its `when` and "
                f"`components.include`)"
            )
            problems.append(component.source.problem(("spec", "depends_on", index), message))
    return problems
