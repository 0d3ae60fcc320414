"""Rules that span manifests: names that must exist, cycles, layers, references, conditions.

Runs after `engine.loading` on what loaded (and what could be salvaged from broken files),
and reports every problem it finds rather than the first, each at the file and line a user
has to edit. Component rules live here; environment rules in `engine.environment_checks`.
"""

from __future__ import annotations

from collections.abc import Iterator

from gitopsd.engine import (
    driver_values,
    environment_checks,
    rendering,
    secret_references,
    sources,
    workflow_inputs,
)
from gitopsd.engine.conditions import parse_condition
from gitopsd.engine.graph import DependencyCycleError
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.references import ExpressionError, parse_reference
from gitopsd.engine.sources import Problem
from gitopsd.model.manifests import GitHubActionsDriver

Location = environment_checks.Location
References = environment_checks.References


def validate(repository: Repository) -> list[Problem]:
    """Every cross-file problem of `repository`, sorted by file and line."""
    references, problems = _parse_references(repository)
    problems += [
        *_check_layers(repository),
        *_check_notifications(repository),
        *_check_dependencies(repository),
        *_check_dependency_cycle(repository),
        *_check_output_references(repository, references),
        *_check_conditions(repository),
        *_check_workflow_inputs(repository),
        *driver_values.check_driver_values(repository),
        *secret_references.check(repository),
        *environment_checks.check_environments(repository),
    ]
    reported = {(problem.path, problem.line) for problem in problems}
    bindings = environment_checks.check_bindings(repository, references)
    problems.extend(p for p in bindings if (p.path, p.line) not in reported)
    sources.release()
    return sorted(set(problems))


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


def _check_notifications(repository: Repository) -> Iterator[Problem]:
    """Names are unique (they label metrics and logs); environment filters name real ones."""
    source = repository.settings_source
    if source is None:
        return
    seen: set[str] = set()
    for index, notification in enumerate(repository.settings.notifications):
        if notification.name in seen:
            message = f"notification {notification.name!r} is listed twice"
            yield source.problem(("notifications", index, "name"), message)
        seen.add(notification.name)
        for position, name in enumerate(notification.environments or []):
            if name not in repository.environments and name not in repository.unusable:
                known = ", ".join(sorted(repository.environments)) or "none"
                message = f"unknown environment {name!r} (environments: {known})"
                yield source.problem(("notifications", index, "environments", position), message)


def _check_dependencies(repository: Repository) -> Iterator[Problem]:
    rank = {layer: index for index, layer in enumerate(repository.settings.layers)}
    for component in repository.components.values():
        manifest = component.manifest
        for index, dependency in enumerate(manifest.spec.depends_on):
            location = ("spec", "depends_on", index)
            target = repository.components.get(dependency)
            if dependency == manifest.name:
                yield component.source.problem(location, "a component cannot depend on itself")
            elif target is None and dependency not in repository.unusable:
                message = f"depends on unknown component {dependency!r}"
                yield component.source.problem(location, message)
            elif target is not None and _is_later(rank, target, than=component):
                message = (
                    f"depends on {dependency!r} of the later layer "
                    f"{target.manifest.metadata.layer!r} (this component is in "
                    f"{manifest.metadata.layer!r}); dependencies must be in the same or an "
                    "earlier layer"
                )
                yield component.source.problem(location, message)


def _is_later(rank: dict[str, int], target: ComponentEntry, *, than: ComponentEntry) -> bool:
    """Whether `target` is in a later layer than `than`; never when either layer is unknown:
    `_check_layers` reports that, and an order made up for it would add a misleading problem
    ("depends on 'network' of the later layer 'network'")."""
    mine = rank.get(than.manifest.metadata.layer)
    theirs = rank.get(target.manifest.metadata.layer)
    return mine is not None and theirs is not None and theirs > mine


def _check_dependency_cycle(repository: Repository) -> Iterator[Problem]:
    try:
        repository.dependency_order  # noqa: B018 - sorted once and kept for selection
    except DependencyCycleError as error:
        cycle = error.cycle
    else:
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
    problems: list[Problem] = []
    for name, component in repository.components.items():
        references[name] = []
        try:
            for placeholder in rendering.iter_placeholders(component.manifest.spec.inputs):
                try:
                    reference = parse_reference(placeholder.expression)
                except ExpressionError as error:  # each bad one reported, not just the first
                    location = ("spec", "inputs", *placeholder.path)
                    problems.append(component.source.problem(location, error.message))
                else:
                    references[name].append((placeholder.path, reference))
        except rendering.RenderError as error:
            location = ("spec", "inputs", *error.path)
            problems.append(component.source.problem(location, error.message))
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
        if when is None:
            continue
        try:
            condition = parse_condition(when)
        except ExpressionError as error:
            yield component.source.problem(("spec", "when"), f"invalid condition: {error}")
            continue
        if any(reference.component for reference in condition.references):
            message = "conditions cannot read component outputs (they are decided before any apply)"
            yield component.source.problem(("spec", "when"), message)


def _check_workflow_inputs(repository: Repository) -> Iterator[Problem]:
    """A github-actions component's inputs must fit GitHub's dispatch limits (checked here, on
    names and count; the rendered payload's size is checked when the driver is called)."""
    for component in repository.components.values():
        spec = component.manifest.spec
        if not isinstance(spec.driver, GitHubActionsDriver):
            continue
        try:
            workflow_inputs.check_input_names(spec.inputs)
        except ValueError as error:
            yield component.source.problem(("spec", "inputs"), str(error))
