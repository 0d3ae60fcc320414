"""Load one revision of the watched repo: read its manifests from git, parse and validate.

The meeting point of the git adapter and the pure loading/validation engine; every command
that needs the manifests of a commit comes through `load`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import posixpath
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic

from gitopsd import __version__
from gitopsd.adapters.driver_registry import installed_drivers
from gitopsd.adapters.gitrepo import Blob, GitSource
from gitopsd.adapters.revision_files import RevisionFiles
from gitopsd.engine import limits, loading, validation, yaml_text
from gitopsd.engine.drivers import settings_of
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.sources import Problem

log = logging.getLogger("gitopsd.revisions")
# the layout of a revision kept on disk (`KeptHeader`, `KeptDocument`): change it, and raise this
FORMAT = 3
WRITE_DELAY = 2.0  # the daemon's seconds between a load and writing it (see `_keep_on_disk`)
# git keeps a link's target path as its content, which would be parsed as YAML (a string)
LINKED = (
    "a symbolic link in git: a manifest must be a regular file (what is committed is read,"
    " not what a link points to)"
)
LINKED_FOLDER = (
    "a component must be a folder of its own (what is committed is read, not what a link points to)"
)


@dataclass(frozen=True)
class LoadedRevision:
    """The manifests of one commit, everything wrong with them (empty when valid), and the
    git tree id of each of its folders (a folder's content digest, for fingerprints)."""

    revision: str
    repository: Repository
    problems: list[Problem]
    trees: dict[str, str]

    @property
    def is_valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Revisioned:
    """One revision, ready to run drivers from: its manifests, checkout and folder digests."""

    repository: Repository
    checkout: Path
    trees: dict[str, str]

    @property
    def revision(self) -> str:
        return self.repository.revision


def open_source(location: str, *, branch: str | None, data_dir: Path) -> GitSource:
    return GitSource.open(location, branch=branch, data_dir=data_dir)


def load(source: GitSource, revision: str | None = None) -> LoadedRevision:
    """Read, parse and validate the manifests of `revision` (default: the branch head); no
    more of it than the repository's limits allow (`engine.limits`); its components' drivers
    validated by the installed driver types (`adapters.driver_registry`). Components whose
    files a revision in memory has already (same path, same git blob) are neither read nor
    parsed again."""
    sha = source.resolve(revision) if revision else source.head()
    listing = source.listing(sha)
    listed = {path: blob for path, blob in listing.files.items() if loading.is_manifest_path(path)}
    linked = [Problem(path, 1, LINKED) for path, blob in listed.items() if blob.link]
    linked += _linked_component_folders(source, listing.files)
    listed = {path: blob for path, blob in listed.items() if not blob.link}
    built = loading.built_components({path: blob.sha for path, blob in listed.items()})
    allowed: set[str] = set()  # what the limits let be read (or taken from `built`)

    def read(paths: Collection[str]) -> dict[str, bytes]:
        allowed.update(paths)
        return source.read_blobs({path: listed[path] for path in paths if path not in built})

    files, refused = limits.read_within_limits(
        {path: blob.size for path, blob in listed.items()}, read
    )
    built = {path: entry for path, entry in built.items() if path in allowed}
    unread = [path for path in listed if path not in files and path not in built]
    with _no_collector_passes():
        repository, problems = loading.load_repository(
            files,
            revision=sha,
            driver_types=settings_of(installed_drivers()),
            unread=unread,
            built=built,
        )
        problems = sorted(linked + refused + problems + validation.validate(repository))
    return LoadedRevision(sha, repository, problems, listing.folders)


def _linked_component_folders(source: GitSource, files: Mapping[str, Blob]) -> list[Problem]:
    """A link below components/ to a component's folder: in git it is a file holding a path,
    so no component would be found there and the one meant would silently not exist (an
    orphan, if it was deployed). Links are rare: only their targets are read."""
    links = {
        path: blob
        for path, blob in files.items()
        if blob.link
        and path.startswith(loading.COMPONENTS_DIR + "/")
        and not loading.is_manifest_path(path)
    }
    if not links:
        return []
    problems = []
    for path, raw in source.read_blobs(links).items():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), os.fsdecode(raw)))
        if any(f"{target}/{name}" in files for name in loading.COMPONENT_FILES):
            message = f"a symbolic link in git to the component folder {target}: {LINKED_FOLDER}"
            problems.append(Problem(path, 1, message))
    return problems


@contextlib.contextmanager
def _no_collector_passes() -> Iterator[None]:
    """Building a revision's models makes a great many objects that all live as long as the
    revision, so the cyclic collector's passes over them meanwhile free nothing; at 10,000
    components they were a large share of a load (benchmarks/README.md). The collector is
    off while they are built, and on again after.

    They are not frozen out of its later passes (`gc.freeze`): a freeze also keeps, for good,
    whatever cyclic garbage any other thread has left at that moment, and a walk that held
    a reference cycle grew the daemon by 3.5 MB a commit (benchmarks/README.md, memory)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class KeptHeader(pydantic.BaseModel):
    """The first line of a valid revision on disk: what wrote it, for which commit, its folder
    trees and how many manifests follow, one a line (`KeptDocument`); not its models.

    Plain data, never code: reading it back builds and validates the models again with this
    gitopsd's rules, which costs a fraction of reading git and parsing YAML. The version and
    format are checked as well as named in the file name, so a renamed or planted file is
    ignored like any other that does not fit; the count, so a file cut short at the end of a
    line is never read as a revision without its last manifests.
    """

    model_config = pydantic.ConfigDict(extra="forbid", defer_build=True)

    format: Literal[3]
    gitopsd: str
    revision: str
    documents: int
    trees: dict[str, str]


class KeptDocument(pydantic.BaseModel):
    """The first of a manifest's two lines: its path and the id of its content, by which a
    component already in memory is found without reading the second line (`KeptContent`):
    the revision an environment is at is read back while the head's, which shares most of
    its components, is in memory."""

    model_config = pydantic.ConfigDict(extra="forbid", defer_build=True)

    path: str
    content_id: str


class KeptContent(pydantic.BaseModel):
    """The second line of a manifest: its text (for the line of a problem) and its YAML data.
    Its values are not kept in pydantic's cache of strings (see `model.state.Record`): a
    commit's changed values would stay there."""

    model_config = pydantic.ConfigDict(extra="forbid", defer_build=True, cache_strings=False)

    text: str
    data: dict[str, Any]


Kept = TypeVar("Kept", KeptHeader, KeptDocument)


def _kept_lines(loaded: LoadedRevision, earlier: Iterator[str]) -> Iterator[str]:
    """The JSON lines of a valid revision, made as they are written, its manifests in path
    order. A manifest's data line is copied from `earlier` (the lines of the revision kept
    before it, in the same order) when that one has the same file with the same content;
    only the others are parsed again, here, in the writer's thread: a loaded revision holds
    its files' text, not the mappings they parse to (`SourceFile`). A commit changes a few
    manifests of thousands, and parsing all of them again for every commit was a tenth of a
    second of the interpreter at 1,000 components, beside the run that commit started
    (benchmarks/README.md). Data that is not all JSON (a YAML date or set, which would come
    back as something else) raises TypeError or ValueError."""
    repository = loaded.repository
    sources = [entry.source for entry in repository.environments.values()]
    sources += [entry.source for entry in repository.components.values()]
    if repository.settings_source is not None:
        sources.append(repository.settings_source)
    sources.sort(key=lambda source: source.path)
    header = {"format": FORMAT, "gitopsd": __version__, "revision": loaded.revision}
    yield _json_line(header | {"documents": len(sources), "trees": loaded.trees})
    before = _EarlierDocuments(earlier)
    for source in sources:
        content_id = loading.content_id(source.text)
        yield _json_line({"path": source.path, "content_id": content_id})
        yield before.data_line(source.path, content_id) or _json_line(
            {"text": source.text, "data": yaml_text.values(source.text)}
        )


class _EarlierDocuments:
    """The manifests of a revision kept before, walked once in path order beside those of
    the one being written (a merge of two sorted lists: one line pair in memory at a time)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._documents = _document_lines(lines)
        self._next = next(self._documents, None)

    def data_line(self, path: str, content_id: str) -> str | None:
        """The kept data line of the file at `path` if its content was `content_id` then."""
        while self._next is not None and self._next[0] < path:
            self._next = next(self._documents, None)
        if self._next is not None and self._next[:2] == (path, content_id):
            return self._next[2]
        return None


def _document_lines(lines: Iterator[str]) -> Iterator[tuple[str, str, str]]:
    """Each manifest of kept `lines` as its path, content id and data line (newline ended);
    nothing of a file this gitopsd did not write, and nothing from a damaged line on. A
    data line is checked to be JSON before it is copied: a file cut short or zeroed by a
    crash of the machine would otherwise pass its damage on to every revision after it."""
    try:
        header = _kept(KeptHeader, next(lines, "{}"))
        if header.gitopsd != __version__:
            return
        for first in lines:
            kept = _kept(KeptDocument, first)
            second = next(lines, "")
            json.loads(second)
            yield kept.path, kept.content_id, second + "\n"
    except ValueError:  # pydantic's ValidationError is one too
        return


def _json_line(value: dict[str, Any]) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":")) + "\n"


def _kept(model: type[Kept], line: str) -> Kept:
    """A line of paths (`KeptHeader`, `KeptDocument`) read back: a path git names in bytes
    that are not UTF-8 is kept with surrogate escapes (adapters/git_output), which
    `_json_line` writes as `\\udcNN`. Python's JSON reads them back; pydantic's refuses
    them, and every revision with such a folder or file was unreadable on disk."""
    return model.model_validate(json.loads(line))


def _from_kept_lines(sha: str, lines: Iterator[str]) -> LoadedRevision | None:
    """The revision the `lines` keep, its models built again; None when there are none, or
    they are damaged, written by another gitopsd or for another commit, or no longer valid
    by these rules."""
    header = next(lines, None)
    if header is None:
        return None
    try:
        kept = _kept(KeptHeader, header)
        if kept.gitopsd != __version__ or kept.revision != sha:
            return None
        found = _kept_documents(lines, kept.documents)
    except ValueError as error:  # pydantic's ValidationError is one too
        log.warning("ignoring unreadable cached revision %s: %s", sha[:12], error)
        return None
    if found is None:
        return None  # fewer or more lines than the header says: cut short, or not ours
    documents, built = found
    repository, problems = loading.load_parsed(
        documents, revision=sha, driver_types=settings_of(installed_drivers()), built=built
    )
    if problems or validation.validate(repository):
        return None
    return LoadedRevision(sha, repository, [], kept.trees)


def _kept_documents(
    lines: Iterator[str], count: int
) -> tuple[dict[str, loading.Document], dict[str, ComponentEntry]] | None:
    """The `count` manifests of a kept revision, by path: the components in memory already,
    found by their content's id, and the others' text and data, read from their second
    line; None unless exactly `count` pairs of lines are left."""
    documents: dict[str, loading.Document] = {}
    built: dict[str, ComponentEntry] = {}
    for _ in range(count):
        first, second = next(lines, None), next(lines, None)
        if first is None or second is None:
            return None
        kept = _kept(KeptDocument, first)
        found = loading.built_components({kept.path: kept.content_id})
        if found:
            built.update(found)
        else:
            content = KeptContent.model_validate_json(second)
            documents[kept.path] = (content.text, content.data)
    if next(lines, None) is not None:
        return None
    return documents, built


class RevisionCache:
    """The last few revisions loaded, by commit; with a `folder`, kept on disk too.

    The daemon loads a new head to see which environments want it, and the run it starts
    loads the same commit again; an apply also loads the previous revision for its
    rollback. Keeping the last `size` loads (manifests are immutable) saves the time and the
    memory of second copies. On disk, a valid load outlives the process: the next command
    (a scheduled `gitopsd drift` after an apply) reads the parsed manifests back instead of
    reading git and parsing YAML again. The revisions held share the components they have
    in common (loading keeps one entry per file content, from git or from disk), and a
    commit is loaded once however many threads ask for it at the same time, so the cache
    costs one revision plus what changed between them.
    """

    def __init__(self, source: GitSource, *, size: int = 3, folder: Path | None = None) -> None:
        self._source = source
        self._size = size
        tag = f"gitopsd-{__version__}.format-{FORMAT}"
        self._files = None if folder is None else RevisionFiles(folder, tag=tag)
        self._loaded: OrderedDict[str, LoadedRevision] = OrderedDict()
        self._lock = threading.Lock()
        # one lock per commit being loaded: threads asking for it meanwhile wait for that load
        self._loading: dict[str, threading.Lock] = {}
        self._trees: dict[str, str] = {}  # the folder digests of the last revision loaded
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="revision-writer")
        self._closing = threading.Event()
        self.write_delay = 0.0  # a daemon sets WRITE_DELAY; a command writes at once
        self._waiting_writes = 0  # loads handed to the writer and not yet taken up

    def load(self, revision: str | None = None) -> LoadedRevision:
        sha = self._source.resolve(revision) if revision else self._source.head()
        with self._lock:
            found = self._held(sha)
            if found is not None:
                return found
            gate = self._loading.setdefault(sha, threading.Lock())
        with gate:  # a thread that asks while another loads `sha` waits for that load
            try:
                with self._lock:
                    found = self._held(sha)
                return found or self._load_new(sha)
            finally:
                with self._lock:
                    if self._loading.get(sha) is gate:
                        del self._loading[sha]

    def _held(self, sha: str) -> LoadedRevision | None:
        """`sha` if held, now the most recently used; the caller holds `_lock`."""
        found = self._loaded.get(sha)
        if found is not None:
            self._loaded.move_to_end(sha)
        return found

    def _load_new(self, sha: str) -> LoadedRevision:
        """Load `sha` from disk or git (the caller holds its gate) and hold it."""
        loaded = self._from_disk(sha)
        kept_on_disk = loaded is not None
        if loaded is None:
            loaded = load(self._source, sha)
        loaded = replace(loaded, trees=self._share_trees(loaded.trees))
        if not kept_on_disk:
            self._keep_on_disk(sha, loaded)
        with self._lock:
            self._loaded[sha] = loaded
            while len(self._loaded) > self._size:
                self._loaded.popitem(last=False)
        return loaded

    def _share_trees(self, trees: dict[str, str]) -> dict[str, str]:
        """`trees` (folder path -> git tree id) made of the last revision's paths and ids
        where they are the same: a commit changes a few folders' digests of thousands, and
        each load would otherwise hold its own copy of every one, made anew every commit."""
        with self._lock:
            shared = {path: tree for path, tree in self._trees.items() if trees.get(path) == tree}
            shared.update((path, tree) for path, tree in trees.items() if path not in shared)
            self._trees = shared
        return shared

    def close(self) -> None:
        """Write the loads still waiting, now, and wait for them (a command ending calls this)."""
        self._closing.set()
        self._writer.shutdown(wait=True)

    def _keep_on_disk(self, sha: str, loaded: LoadedRevision) -> None:
        """Write the load for the next process in the background, `write_delay` later:
        whoever asked for it (a new head's requests, a run) goes on meanwhile. In a daemon
        the delay keeps writing (which parses the manifests' text again) from competing for
        the interpreter with the run a new head starts; a command writes at once, and the
        writer is joined at exit (or by `close`), so its load is on disk when it ends."""
        if self._files is not None:
            due = time.monotonic() + self.write_delay
            with self._lock:
                self._waiting_writes += 1
            try:
                self._writer.submit(self._write, self._files, sha, loaded, due)
            except RuntimeError:  # the interpreter is stopping: skip it
                with self._lock:
                    self._waiting_writes -= 1

    def _write(self, files: RevisionFiles, sha: str, loaded: LoadedRevision, due: float) -> None:
        """Keep a valid load (one whose data is not all JSON is not kept, nor are problems)
        once it is `due`. The delay runs from the load, not from the write before it: waited
        one after the other, commits coming faster than one every `write_delay` queued loads
        without end, each held in memory, and a stopping daemon had all of them to write. A
        load with as many newer ones waiting as the folder keeps files is skipped: it would
        be pruned at once."""
        self._closing.wait(max(0.0, due - time.monotonic()))
        with self._lock:
            self._waiting_writes -= 1
            superseded = self._waiting_writes >= files.keep
        if not loaded.problems and not superseded:
            with (
                contextlib.closing(files.latest_lines()) as before,
                contextlib.suppress(TypeError, ValueError),
            ):
                files.put(sha, _kept_lines(loaded, before))

    def _from_disk(self, sha: str) -> LoadedRevision | None:
        if self._files is None:
            return None
        with _no_collector_passes():
            return _from_kept_lines(sha, self._files.lines(sha))
