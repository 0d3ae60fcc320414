"""Load the manifests of one revision into typed models, collecting every problem at once.

Input is the set of manifest files of a git commit (path -> bytes), as an adapter read them;
output is a `Repository` of the files that parsed and validated, plus a list of `Problem`s for
those that did not. Rules that span files are checked afterwards by `engine.validation`.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

from gitopsd.engine import fieldchecks, graph, rendering, sources, yaml_text
from gitopsd.engine.sources import Problem, SourceFile
from gitopsd.model.manifests import (
    DRIVER_TYPES,
    SHARED_DRIVERS,
    Component,
    DriverSettings,
    Environment,
    EnvironmentSpec,
    RepoSettings,
    SharedDrivers,
)

SETTINGS_PATH = "gitopsd.yaml"
ENVIRONMENTS_DIR = "environments"
COMPONENTS_DIR = "components"
COMPONENT_FILES = ("component.yaml", "component.yml")
FileKey = tuple[str, str]  # a file's path and git's id of its content (`_digest`)
# the valid components of the revisions in memory, by file, held weakly (see `_check_component`)
_CHECKED: weakref.WeakValueDictionary[FileKey, ComponentEntry] = weakref.WeakValueDictionary()
# their `driver:` settings, one per block written the same, held weakly too: a component a
# new head changed shares the settings of the thousand it did not change (a table made per
# load kept a copy for every component a daemon's commits had changed)
_DRIVERS: SharedDrivers = weakref.WeakValueDictionary()
Parsed = tuple[SourceFile, dict[str, Any]]  # a manifest's file, and the mapping it holds
Document = tuple[str, dict[str, Any]]  # a manifest parsed before: its text and its mapping
Raw = TypeVar("Raw", bytes, Document)  # a manifest as read from git, or already parsed
NO_SECRETS: frozenset[str] = frozenset()  # what most components reference: one, shared
KIND_HOMES = {
    "Component": "components/**/component.yaml",
    "Environment": "environments/<name>.yaml",
}


@dataclass(frozen=True)
class ComponentEntry:
    manifest: Component
    source: SourceFile

    @property
    def folder(self) -> str:
        """The component's folder in the repo, which is the working directory of its driver."""
        return posixpath.dirname(self.source.path)

    @cached_property
    def secret_names(self) -> frozenset[str]:
        """The names of the secrets its inputs and its driver's `env` reference (a malformed
        reference is validation's to report, and names nothing here). Found once per
        manifest: every decision and every driver call asks. Most name none, and share one
        empty set rather than each holding its own (benchmarks/README.md)."""
        names: set[str] = set()
        driver_env = getattr(self.manifest.spec.driver, "env", None)
        for value in (self.manifest.spec.inputs, driver_env or {}):
            try:
                found = list(rendering.references_in(value))
            except rendering.RenderError:
                continue
            names.update(ref.parts[0] for _, ref in found if ref.root == "secrets")
        return frozenset(names) if names else NO_SECRETS


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
    unusable: set[str] = field(default_factory=set)  # names of files too broken to salvage
    # gitopsd.yaml could not be read at all: its `defaults` (variables) are unknown, so a
    # variable missing from an environment may be missing only because of that
    settings_unread: bool = False

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
    return name in COMPONENT_FILES and path.startswith(COMPONENTS_DIR + "/")


def load_repository(
    files: Mapping[str, bytes],
    *,
    revision: str,
    driver_types: Mapping[str, type[DriverSettings]],
    unread: Collection[str] = (),
    built: Mapping[str, ComponentEntry] | None = None,
) -> tuple[Repository, list[Problem]]:
    """Parse and validate every manifest; return what is valid and every problem found.

    With problems, the repository holds what could be salvaged from the broken files, so the
    cross-file checks report what else is wrong without echoing the same mistake. `unread`
    are the manifests refused unread (`engine.limits`), whose problems are already known.
    `driver_types`: the settings model of each installed driver type, by name
    (`engine.drivers.settings_of`), which validate the components' `driver:` blocks.
    `built`: components of the commit already in memory, by path (`built_components`),
    whose files are not in `files`: they were not even read.
    """
    reader = _Reader(functools.partial(parse_manifest, shared={}), _digest)
    try:
        return _load(
            files, reader, revision=revision, unread=unread, driver_types=driver_types, built=built
        )
    finally:
        sources.release()


def built_components(blobs: Mapping[str, str]) -> dict[str, ComponentEntry]:
    """The components in memory for these files (path -> git's blob id), by path: a new
    head usually changes a few manifests of thousands, and a load handed these
    (`load_repository(built=...)`) needs neither the content nor a parse of the others."""
    found = {}
    for path, blob_id in blobs.items():
        entry = _CHECKED.get((path, blob_id))
        if entry is not None:
            found[path] = entry
    return found


def load_parsed(
    documents: Mapping[str, Document],
    *,
    revision: str,
    driver_types: Mapping[str, type[DriverSettings]],
    built: Mapping[str, ComponentEntry] | None = None,
) -> tuple[Repository, list[Problem]]:
    """`load_repository` of manifests parsed before, by path: the revision cache keeps a
    commit's parsed files, which then skip reading git and parsing YAML, the slow part of a
    load. Only each file's path and text are kept with its models (see `SourceFile`).
    `built`: as for `load_repository`, found by `content_id`."""

    def parsed(path: str, document: Document, problems: list[Problem]) -> Parsed:
        return SourceFile(path, document[0]), document[1]

    def digest(document: Document) -> str:
        return content_id(document[0])

    reader = _Reader(parsed, digest)
    return _load(
        documents, reader, revision=revision, unread=(), driver_types=driver_types, built=built
    )


def content_id(text: str) -> str:
    """The id of a manifest of this text, by which `built_components` finds it."""
    return _digest(text.encode("utf-8"))


@dataclass(frozen=True)
class _Reader(Generic[Raw]):
    """How a load reads its files: parse one (None: its problem reported), and the digest of
    its content that finds a component built before from the same file (`_CHECKED`)."""

    parse: Callable[[str, Raw, list[Problem]], Parsed | None]
    digest: Callable[[Raw], str]


def _digest(raw: bytes) -> str:
    """The id git gives a file of content `raw` (in the SHA-1 object format): what a commit's
    listing names each file by, so a component can be found by it before reading the file."""
    blob = hashlib.sha1(b"blob %d\0" % len(raw), usedforsecurity=False)
    blob.update(raw)
    return blob.hexdigest()


def _load(
    files: Mapping[str, Raw],
    reader: _Reader[Raw],
    *,
    revision: str,
    unread: Collection[str],
    driver_types: Mapping[str, type[DriverSettings]],
    built: Mapping[str, ComponentEntry] | None = None,
) -> tuple[Repository, list[Problem]]:
    context = {DRIVER_TYPES: driver_types, SHARED_DRIVERS: _DRIVERS}
    prebuilt: Mapping[str, ComponentEntry] = built or {}
    problems: list[Problem] = []
    settings, settings_source = _load_settings(files, reader.parse, problems)
    settings_unread = SETTINGS_PATH in files and settings_source is None
    repository = Repository(revision, settings, settings_source, settings_unread=settings_unread)
    repository.unusable.update(_probable_name(path) for path in unread)
    for path in sorted({*files, *prebuilt}):
        if path == SETTINGS_PATH:
            continue
        if path in prebuilt:
            _register(repository, prebuilt[path], problems)
            continue
        raw = files[path]
        if not path.startswith(ENVIRONMENTS_DIR + "/"):
            key = (path, reader.digest(raw))
            parse = functools.partial(reader.parse, path, raw, problems)
            _add_component(repository, key, parse, problems, context)
            continue
        parsed = reader.parse(path, raw, problems)
        if parsed is not None:
            _add_environment(repository, *parsed, problems)
    return repository, problems


def _load_settings(
    files: Mapping[str, Raw],
    parse: Callable[[str, Raw, list[Problem]], Parsed | None],
    problems: list[Problem],
) -> tuple[RepoSettings, SourceFile | None]:
    if SETTINGS_PATH not in files:
        return RepoSettings(), None
    parsed = parse(SETTINGS_PATH, files[SETTINGS_PATH], problems)
    if parsed is None:
        return RepoSettings(), None
    source, data = parsed
    settings, found = fieldchecks.check(RepoSettings, source, data)
    problems.extend(found)
    settings = settings or RepoSettings()
    template, found = fieldchecks.check(
        EnvironmentSpec, source, settings.defaults, prefix=("defaults",)
    )
    problems.extend(found)
    if found:  # keep the valid part of the template, as the environments would see it
        defaults = template.model_dump(by_alias=True, exclude_unset=True) if template else {}
        settings = settings.model_copy(update={"defaults": defaults})
    return settings, source


def _add_environment(
    repository: Repository, source: SourceFile, data: dict[str, Any], problems: list[Problem]
) -> None:
    if not _is_kind(source, data, "Environment", problems):
        return
    data = dict(data)
    spec = data.get("spec") or {}
    if isinstance(spec, dict):
        data["spec"] = merge_defaults(repository.settings.defaults, spec)
    environment, found = fieldchecks.check(Environment, source, data, report=_is_written_in(source))
    problems.extend(found)
    if environment is None:
        _remember_unusable(repository, data)
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


def _add_component(
    repository: Repository,
    key: FileKey,
    parse: Callable[[], Parsed | None],
    problems: list[Problem],
    context: Mapping[str, Any],
) -> None:
    entry = _CHECKED.get(key)
    if entry is None:
        parsed = parse()
        if parsed is None or not _is_kind(*parsed, "Component", problems):
            return
        entry = _check_component(key, *parsed, problems, context)
        if entry is None:
            _remember_unusable(repository, parsed[1])
            return
    _register(repository, entry, problems)


def _register(repository: Repository, entry: ComponentEntry, problems: list[Problem]) -> None:
    name = entry.manifest.name
    if name in repository.components:
        first = repository.components[name].source
        message = _duplicate("component", first)
        problems.append(entry.source.problem(("metadata", "name"), message))
        return
    repository.components[name] = entry


def _check_component(
    key: FileKey,
    source: SourceFile,
    data: dict[str, Any],
    problems: list[Problem],
    context: Mapping[str, Any],
) -> ComponentEntry | None:
    """The component a parsed file makes, kept for the next revisions with the same file.

    A component's model depends on its file alone, so revisions with the same file (same
    path, same content) share its entry: a new head parses and builds models for the files
    it changed only (with 1,000 components, parsing them all again was most of the time
    from a commit to its first driver), and holds no second copy of the others. The memo
    holds an entry only while a revision in memory uses it: old versions of changed files
    leave it with the last revision that had them. An entry with problems is not kept, so
    every load reports them.
    """
    component, found = fieldchecks.check(Component, source, data, context=context)
    problems.extend(found)
    if component is None:
        return None
    entry = ComponentEntry(component, source)
    if not found:
        _CHECKED[key] = entry
    return entry


def _is_kind(
    source: SourceFile, data: dict[str, Any], expected: str, problems: list[Problem]
) -> bool:
    """A manifest of the other kind in this folder is one problem, not a list of field errors."""
    kind = data.get("kind")
    if kind in KIND_HOMES and kind != expected:
        message = f"kind {kind} belongs in {KIND_HOMES[kind]}, not here"
        problems.append(source.problem(("kind",), message))
        return False
    return True


def _remember_unusable(repository: Repository, data: dict[str, Any]) -> None:
    """A file too broken to salvage still names something: don't call that name unknown."""
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        repository.unusable.add(metadata["name"])


def _probable_name(path: str) -> str:
    """What a manifest never read probably names: an environment's file name, a component's
    folder (the usual layout; its `metadata.name` is unknown unread)."""
    if path.startswith(ENVIRONMENTS_DIR + "/"):
        return posixpath.splitext(posixpath.basename(path))[0]
    return posixpath.basename(posixpath.dirname(path))


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


def parse_manifest(
    path: str, raw: bytes, problems: list[Problem], *, shared: dict[str, str] | None = None
) -> Parsed | None:
    """One manifest's file and the mapping it holds, or None (its problem added); the
    mapping is for building the models, and dropped with the load (see `SourceFile`).
    `shared`: the load's text values, one object each (`yaml_text.parse`)."""
    try:
        return yaml_text.parse(path, raw, shared=shared)
    except sources.SourceError as error:
        problems.append(error.problem)
        return None


def _is_written_in(source: SourceFile) -> Callable[[sources.Location], bool]:
    """Errors on fields the file does not write came from the gitopsd.yaml template, where
    they are reported once; an environment reports only its own."""

    def is_written(location: sources.Location) -> bool:
        return source.has(location) or source.has(location[:-1])

    return is_written
