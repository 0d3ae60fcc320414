"""Rules about environments: the promotion chain, approvals, selections and variables.

Part of validation (see `engine.validation`). An environment's spec is its own file merged
over the gitopsd.yaml template, so each problem is reported where the offending value is
written: once in gitopsd.yaml for an inherited value, not once per environment.
"""

from __future__ import annotations

from collections.abc import Iterator

from gitopsd.engine import graph, selection
from gitopsd.engine.conditions import Condition, parse_condition
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry, Repository
from gitopsd.engine.references import ExpressionError, Reference
from gitopsd.engine.sources import Problem

Location = tuple[str | int, ...]
References = dict[str, list[tuple[Location, Reference]]]


def check_environments(repository: Repository) -> Iterator[Problem]:
    """Static rules of every environment, and of the promotion chain between them."""
    yield from _check_promotion_chain(repository)
    for environment in repository.environments.values():
        yield from _check_environment(repository, environment)


def check_bindings(repository: Repository, references: References) -> Iterator[Problem]:
    """Per environment: conditions evaluate, dependencies are present, variables exist.

    One problem per place and environment: an unknown variable in a `when` is found both by
    the name check and by evaluating the condition, and is worth one line.
    """
    for environment in repository.environments.values():
        seen: set[tuple[str, int]] = set()
        for problem in _environment_bindings(repository, environment, references):
            if (problem.path, problem.line) not in seen:
                seen.add((problem.path, problem.line))
                yield problem


def _problem(
    repository: Repository, environment: EnvironmentEntry, location: Location, message: str
) -> Problem:
    """Report at the environment's file, or at the template value it inherited."""
    template = repository.settings_source
    inherited = ("defaults", *location[1:])
    if environment.source.has(location) or template is None or not template.has(inherited):
        return environment.source.problem(location, message)
    return template.problem(inherited, message)


def _check_promotion_chain(repository: Repository) -> Iterator[Problem]:
    environments = repository.environments
    location = ("spec", "promotion", "from")
    for environment in environments.values():
        upstream = environment.manifest.upstream
        is_unknown = upstream not in environments and upstream not in repository.unusable
        if upstream is not None and is_unknown:
            message = f"promotes from unknown environment {upstream!r}"
            yield _problem(repository, environment, location, message)
    chain = {name: [e.manifest.upstream or ""] for name, e in environments.items()}
    cycle = graph.find_cycle(chain)
    if cycle is not None:
        message = f"promotion cycle: {' -> '.join(cycle)}"
        yield _problem(repository, environments[cycle[0]], location, message)
    for name, environment in environments.items():
        if environment.manifest.upstream == name:
            message = "an environment cannot promote from itself"
            yield _problem(repository, environment, location, message)


def _check_environment(repository: Repository, environment: EnvironmentEntry) -> Iterator[Problem]:
    spec = environment.manifest.spec
    approvers = set(spec.approvals.approvers)
    if approvers and spec.approvals.required > len(approvers):
        allowed = f"{len(approvers)} distinct approver" + ("s" if len(approvers) > 1 else "")
        message = f"requires {spec.approvals.required} approvals but approvers names only {allowed}"
        yield _problem(repository, environment, ("spec", "approvals", "required"), message)
    layers = set(repository.settings.layers)
    for index, name in enumerate(spec.components.include or []):
        if name not in repository.components and name not in layers:
            message = f"includes {name!r}, which is neither a component nor a layer"
            location = ("spec", "components", "include", index)
            yield _problem(repository, environment, location, message)
    for name in spec.overrides:
        if name not in repository.components and name not in repository.unusable:
            message = f"overrides unknown component {name!r}"
            yield _problem(repository, environment, ("spec", "overrides", name), message)


def _environment_bindings(
    repository: Repository, environment: EnvironmentEntry, references: References
) -> Iterator[Problem]:
    if repository.settings_unread:  # variables from gitopsd.yaml unknown: not reported missing
        return
    yield from _check_condition_variables(repository, environment)
    chosen, problems = selection.choose(repository, environment.manifest.name)
    yield from problems
    for component in chosen.values():
        found = references.get(component.manifest.name)
        if found:
            yield from _check_variables(environment, component, found)


def _check_condition_variables(
    repository: Repository, environment: EnvironmentEntry
) -> Iterator[Problem]:
    """Every variable a `when` reads must exist, even where `and`/`or` would skip it."""
    for component in repository.components.values():
        if component.manifest.spec.when is None:
            continue
        condition = _parsed_condition(component)
        if condition is None:
            continue
        variables = selection.variables_for(environment, component.manifest.name)
        for reference in condition.references:
            if reference.root == "vars" and reference.parts[0] not in variables:
                message = f"unknown variable {reference.parts[0]!r} {_where(environment)}"
                yield component.source.problem(("spec", "when"), message)


def _parsed_condition(component: ComponentEntry) -> Condition | None:
    """The component's `when`, or None when it has none or it does not parse (reported once)."""
    when = component.manifest.spec.when
    try:
        return None if when is None else parse_condition(when)
    except ExpressionError:
        return None


def _check_variables(
    environment: EnvironmentEntry,
    component: ComponentEntry,
    references: list[tuple[Location, Reference]],
) -> Iterator[Problem]:
    variables = selection.variables_for(environment, component.manifest.name)
    for path, reference in references:
        if reference.root == "vars" and reference.parts[0] not in variables:
            message = f"unknown variable {reference.parts[0]!r} {_where(environment)}"
            yield component.source.problem(("spec", "inputs", *path), message)


def _where(environment: EnvironmentEntry) -> str:
    return f"in environment {environment.manifest.name!r} ({environment.source.path})"
