"""Rules that span manifests: names that must exist, cycles, layers, references, conditions.

Runs after `engine.loading` on what loaded, and reports every problem it finds rather than the
first, each at the file and line a user has to edit. Checks that depend on an environment
(variables, `when`) are run for every environment, through `engine.selection`.
"""

from __future__ import annotations

from collections.abc import Iterator

from gitopsd.engine import graph, rendering, selection
from gitopsd.engine.conditions import Condition, parse_condition
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry, Repository
from gitopsd.engine.references import ExpressionError, Reference
from gitopsd.engine.sources import Problem

Location = tuple[str | int, ...]
References = dict[str, list[tuple[Location, Reference]]]


def validate(repository: Repository) -> list[Problem]:
    """Every cross-file problem of `repository`, sorted by file and line."""
    cycle = _find_cycle(repository)
    references, problems = _parse_references(repository)
    problems += [
        *_check_layers(repository),
        *_check_dependencies(repository),
        *_report_dependency_cycle(repository, cycle),
        *_check_output_references(repository, references),
        *_check_conditions(repository),
        *_check_promotion_chain(repository),
    ]
    for environment in repository.environments.values():
        problems.extend(_check_environment(repository, environment))
    if cycle is None:  # environments cannot be ordered around a cycle
        reported = {(problem.path, problem.line) for problem in problems}
        bindings = _check_environment_bindings(repository, references)
        problems.extend(p for p in bindings if (p.path, p.line) not in reported)
    return sorted(set(problems))


def _find_cycle(repository: Repository) -> list[str] | None:
    try:
        repository.dependency_order  # noqa: B018 - sorted once and kept for selection
    except graph.DependencyCycleError as error:
        return error.cycle
    return None


def _check_layers(repository: Repository) -> Iterator[Problem]:
    layers = repository.settings.layers
    source = repository.settings_source
    for index, layer in enumerate(layers):
        if source is not None and layer in layers[:index]:
            yield source.problem(("layers", index), f"layer {layer!r} is listed twice")
    for component in repository.components.values():
        layer = component.manifest.metadata.layer
        if layer not in layers:
            message = f"unknown layer {layer!r}; the repo's layers are {', '.join(layers)}"
            yield component.source.problem(("metadata", "layer"), message)


def _check_dependencies(repository: Repository) -> Iterator[Problem]:
    rank = {layer: index for index, layer in enumerate(repository.settings.layers)}
    for component in repository.components.values():
        manifest = component.manifest
        for index, dependency in enumerate(manifest.spec.depends_on):
            location = ("spec", "depends_on", index)
            target = repository.components.get(dependency)
            if dependency == manifest.name:
                yield component.source.problem(location, "a component cannot depend on itself")
            elif target is None:
                yield component.source.problem(
                    location, f"depends on unknown component {dependency!r}"
                )
            elif _layer_rank(rank, target) > _layer_rank(rank, component):
                message = (
                    f"depends on {dependency!r} of the later layer "
                    f"{target.manifest.metadata.layer!r} (this component is in "
                    f"{manifest.metadata.layer!r}); dependencies must be in the same or an "
                    "earlier layer"
                )
                yield component.source.problem(location, message)


def _layer_rank(rank: dict[str, int], component: ComponentEntry) -> int:
    return rank.get(component.manifest.metadata.layer, -1)


def _report_dependency_cycle(repository: Repository, cycle: list[str] | None) -> Iterator[Problem]:
    if cycle is None:
        return
    components = repository.components
    first = components[cycle[0]]
    index = first.manifest.spec.depends_on.index(cycle[1])
    files = ", ".join(dict.fromkeys(components[name].source.path for name in cycle))
    message = f"dependency cycle: {' -> '.join(cycle)} (in {files})"
    yield first.source.problem(("spec", "depends_on", index), message)


def _parse_references(repository: Repository) -> tuple[References, list[Problem]]:
    """The `${{ }}` references of every component's inputs, parsed once for all checks."""
    references: References = {}
    problems = []
    for name, component in repository.components.items():
        try:
            references[name] = list(rendering.references_in(component.manifest.spec.inputs))
        except rendering.RenderError as error:
            problems.append(component.source.problem(("spec", "inputs", *error.path), str(error)))
    return references, problems


def _check_output_references(repository: Repository, references: References) -> Iterator[Problem]:
    """Outputs may be read only from direct dependencies, which are applied first."""
    for name, found in references.items():
        component = repository.components[name]
        for path, reference in found:
            dependency = reference.component
            if dependency is not None and dependency not in component.manifest.spec.depends_on:
                message = (
                    f"reads outputs of {dependency!r}, which is not in depends_on; "
                    "outputs may only come from direct dependencies"
                )
                yield component.source.problem(("spec", "inputs", *path), message)


def _check_conditions(repository: Repository) -> Iterator[Problem]:
    for component in repository.components.values():
        when = component.manifest.spec.when
        if when is not None:
            yield from _check_condition(component, when)


def _check_condition(component: ComponentEntry, when: str) -> Iterator[Problem]:
    try:
        condition = parse_condition(when)
    except ExpressionError as error:
        yield component.source.problem(("spec", "when"), f"invalid condition: {error}")
        return
    for reference in condition.references:
        if reference.component is not None:
            message = "conditions cannot read component outputs (they are decided before any apply)"
            yield component.source.problem(("spec", "when"), message)


def _check_promotion_chain(repository: Repository) -> Iterator[Problem]:
    environments = repository.environments
    for environment in environments.values():
        upstream = environment.manifest.upstream
        if upstream is not None and upstream not in environments:
            message = f"promotes from unknown environment {upstream!r}"
            yield environment.source.problem(("spec", "promotion", "from"), message)
    chain = {n: [e.manifest.upstream or ""] for n, e in environments.items()}
    cycle = graph.find_cycle(chain)
    if cycle is not None:
        first = environments[cycle[0]]
        message = f"promotion cycle: {' -> '.join(cycle)}"
        yield first.source.problem(("spec", "promotion", "from"), message)


def _check_environment(repository: Repository, environment: EnvironmentEntry) -> Iterator[Problem]:
    spec = environment.manifest.spec
    source = environment.source
    approvals = spec.approvals
    if approvals.approvers and approvals.required > len(approvals.approvers):
        message = (
            f"requires {approvals.required} approvals but only "
            f"{len(approvals.approvers)} approvers are allowed"
        )
        yield source.problem(("spec", "approvals", "required"), message)
    layers = set(repository.settings.layers)
    for index, name in enumerate(spec.components.include or []):
        if name not in repository.components and name not in layers:
            message = f"includes {name!r}, which is neither a component nor a layer"
            yield source.problem(("spec", "components", "include", index), message)
    for name in spec.overrides:
        if name not in repository.components:
            yield source.problem(
                ("spec", "overrides", name), f"overrides unknown component {name!r}"
            )


def _check_environment_bindings(
    repository: Repository, references: References
) -> Iterator[Problem]:
    """Per environment: conditions evaluate, dependencies are present, variables exist.

    One problem per place and environment: an unknown variable in a `when` is found both by
    the name check and by evaluating the condition, and is worth one line.
    """
    for environment in repository.environments.values():
        seen: set[tuple[str, int]] = set()
        for problem in _environment_problems(repository, environment, references):
            if (problem.path, problem.line) not in seen:
                seen.add((problem.path, problem.line))
                yield problem


def _environment_problems(
    repository: Repository, environment: EnvironmentEntry, references: References
) -> Iterator[Problem]:
    yield from _check_condition_variables(repository, environment)
    chosen = selection.select(repository, environment.manifest.name)
    yield from chosen.problems
    for component in chosen.components:
        found = references.get(component.manifest.name)
        if found:
            yield from _check_variables(environment, component, found)


def _check_condition_variables(
    repository: Repository, environment: EnvironmentEntry
) -> Iterator[Problem]:
    """Every variable a `when` reads must exist, even where `and`/`or` would skip it."""
    for component in repository.components.values():
        condition = _parsed_condition(component)
        if condition is None:
            continue
        variables = selection.variables_for(environment, component.manifest.name)
        for reference in condition.references:
            if reference.root == "vars" and reference.parts[0] not in variables:
                where = f"in environment {environment.manifest.name!r} ({environment.source.path})"
                message = f"unknown variable {reference.parts[0]!r} {where}"
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
            where = f"in environment {environment.manifest.name!r} ({environment.source.path})"
            message = f"unknown variable {reference.parts[0]!r} {where}"
            yield component.source.problem(("spec", "inputs", *path), message)
