"""Load one revision of the watched repo: read its manifests from git, parse and validate.

The meeting point of the git adapter and the pure loading/validation engine; every command
that needs the manifests of a commit comes through `load`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gitopsd.adapters.gitrepo import GitSource
from gitopsd.engine import loading, validation
from gitopsd.engine.loading import Repository
from gitopsd.engine.sources import Problem


@dataclass(frozen=True)
class LoadedRevision:
    """The manifests of one commit, and everything wrong with them (empty when valid)."""

    revision: str
    repository: Repository
    problems: list[Problem]

    @property
    def is_valid(self) -> bool:
        return not self.problems


def open_source(location: str, *, branch: str | None, data_dir: Path) -> GitSource:
    return GitSource.open(location, branch=branch, data_dir=data_dir)


def load(source: GitSource, revision: str | None = None) -> LoadedRevision:
    """Read, parse and validate the manifests of `revision` (default: the branch head)."""
    sha = source.resolve(revision) if revision else source.head()
    files = source.read_files(sha, wanted=loading.is_manifest_path)
    with _collector_paused():
        repository, problems = loading.load_repository(files, revision=sha)
        problems = sorted(problems + validation.validate(repository))
    return LoadedRevision(sha, repository, problems)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a revision loads, then freeze what loaded.

    Loading creates hundreds of thousands of small objects that all stay alive; collector
    passes over them free nothing and cost about a third of a 10,000-component load. Frozen
    (`gc.freeze`), they are left out of later passes too, instead of being scanned in full the
    moment the collector is back on. Reference counting still frees them when dropped; the
    manifests hold no reference cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
