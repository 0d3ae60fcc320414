"""Load the manifests of one revision into typed models, collecting every problem at once.

Input is the set of manifest files of a git commit (path -> bytes), as an adapter read them;
output is a `Repository` of the files that parsed and validated, plus a list of `Problem`s for
those that did not. Rules that span files are checked afterwards by `engine.validation`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gitopsd.engine import graph, sources
from gitopsd.engine.sources import Problem, SourceFile
from gitopsd.model.manifests import Component, Environment, EnvironmentSpec, RepoSettings

SETTINGS_PATH = "gitopsd.yaml"
ENVIRONMENTS_DIR = "environments"
COMPONENTS_DIR = "components"
COMPONENT_FILE = "component.yaml"

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class ComponentEntry:
    manifest: Component
    source: SourceFile

    @property
    def folder(self) -> str:
        """The component's folder in the repo, which is the working directory of its driver."""
        return posixpath.dirname(self.source.path)


@dataclass(frozen=True)
class EnvironmentEntry:
    manifest: Environment
    source: SourceFile


@dataclass(frozen=True)
class Repository:
    """Every valid manifest of one revision."""

    revision: str
    settings: RepoSettings
    settings_source: SourceFile | None = None
    components: dict[str, ComponentEntry] = field(default_factory=dict)
    environments: dict[str, EnvironmentEntry] = field(default_factory=dict)

    @cached_property
    def dependency_order(self) -> list[str]:
        """Every component in apply order; raises graph.DependencyCycleError.

        Sorted once per revision: an environment's order is this one filtered to its
        components, which is still a valid order for them.
        """
        return graph.apply_order(
            {name: entry.manifest.spec.depends_on for name, entry in self.components.items()}
        )


def is_manifest_path(path: str) -> bool:
    """Which files of a commit are manifests (the layout of SPEC section 2)."""
    if path == SETTINGS_PATH:
        return True
    head, _, name = path.rpartition("/")
    if head == ENVIRONMENTS_DIR:
        return name.endswith((".yaml", ".yml"))
    return name == COMPONENT_FILE and path.startswith(COMPONENTS_DIR + "/")


def load_repository(
    files: Mapping[str, bytes], *, revision: str
) -> tuple[Repository, list[Problem]]:
    """Parse and validate every manifest; return what is valid and every problem found."""
    problems: list[Problem] = []
    settings, settings_source = _load_settings(files, problems)
    repository = Repository(revision, settings, settings_source)
    for path in sorted(files):
        if path == SETTINGS_PATH:
            continue
        source = _parse(path, files[path], problems)
        if source is None:
            continue
        if path.startswith(ENVIRONMENTS_DIR + "/"):
            _add_environment(repository, source, problems)
        else:
            _add_component(repository, source, problems)
    return repository, problems


def _load_settings(
    files: Mapping[str, bytes], problems: list[Problem]
) -> tuple[RepoSettings, SourceFile | None]:
    if SETTINGS_PATH not in files:
        return RepoSettings(), None
    source = _parse(SETTINGS_PATH, files[SETTINGS_PATH], problems)
    settings = _validate(RepoSettings, source, source.data, problems) if source else None
    if source is not None and settings is not None:
        if _validate(EnvironmentSpec, source, settings.defaults, problems, prefix=("defaults",)):
            return settings, source
        return settings.model_copy(update={"defaults": {}}), source
    return RepoSettings(), source


def _add_environment(repository: Repository, source: SourceFile, problems: list[Problem]) -> None:
    data = dict(source.data)
    spec = data.get("spec", {})
    if isinstance(spec, dict):
        data["spec"] = merge_defaults(repository.settings.defaults, spec)
    environment = _validate(Environment, source, data, problems, only_written=True)
    if environment is None:
        return
    stem = posixpath.splitext(posixpath.basename(source.path))[0]
    if environment.name != stem:
        message = f"name {environment.name!r} must equal the file name {stem!r}"
        problems.append(source.problem(("metadata", "name"), message))
    if environment.name in repository.environments:
        first = repository.environments[environment.name].source
        problems.append(source.problem(("metadata", "name"), _duplicate("environment", first)))
    else:  # kept even when misnamed, so its other problems are found in the same pass
        repository.environments[environment.name] = EnvironmentEntry(environment, source)


def _add_component(repository: Repository, source: SourceFile, problems: list[Problem]) -> None:
    component = _validate(Component, source, source.data, problems)
    if component is None:
        return
    if component.name in repository.components:
        first = repository.components[component.name].source
        problems.append(source.problem(("metadata", "name"), _duplicate("component", first)))
        return
    repository.components[component.name] = ComponentEntry(component, source)


def _duplicate(kind: str, first: SourceFile) -> str:
    _, line = first.locate(("metadata", "name"))
    return f"duplicate {kind} name, first defined at {first.path}:{line}"


def merge_defaults(defaults: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """The environment template under an environment's spec: mappings merge, the rest replaces."""
    merged = dict(defaults)
    for key, value in spec.items():
        base = merged.get(key)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_defaults(base, value)
        else:
            merged[key] = value
    return merged


def _parse(path: str, raw: bytes, problems: list[Problem]) -> SourceFile | None:
    try:
        return sources.parse(path, raw)
    except sources.SourceError as error:
        problems.append(error.problem)
        return None


def _validate(
    model: type[Model],
    source: SourceFile,
    data: Any,
    problems: list[Problem],
    *,
    prefix: tuple[str | int, ...] = (),
    only_written: bool = False,
) -> Model | None:
    """Validate `data` against `model`, turning each pydantic error into a located Problem.

    `only_written` drops errors on fields the file does not write itself: those came from the
    gitopsd.yaml template, where they were already reported once.
    """
    try:
        return model.model_validate(data)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            location = (*prefix, *item["loc"])
            if only_written and not _is_written(source, location):
                continue
            problems.append(source.problem(location, _message(item)))
        return None


def _is_written(source: SourceFile, location: tuple[str | int, ...]) -> bool:
    return source.has(location) or source.has(location[:-1])


def _message(item: Any) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    message = str(item["msg"]).removeprefix("Value error, ")
    value = item.get("input")
    if (
        kind != "value_error"
        and isinstance(value, str | int | float | bool)
        and len(repr(value)) < 60
    ):
        message += f" (got {value!r})"
    return message
