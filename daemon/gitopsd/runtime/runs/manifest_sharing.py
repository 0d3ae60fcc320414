"""Revisions held at once share the manifests they have in common.

Pipeline: git -> **load** -> plan. A daemon holds several revisions at a time: the head, the
revision each environment of the promotion chain is at, and each one's previous revision
for a rollback. A commit usually changes one component of many, so these revisions are
almost the same; loaded apart (from git, or read back from the revision files on disk) each
held its own copy of every component (benchmarks/README.md has the size). Here a
loaded revision's entries are swapped for the equal ones a revision still in memory has, so
N revisions cost one revision plus what changed between them.

Two entries are equal when they come from the same text at the same path: a component's
model is built from its file alone. The registry holds its entries weakly: an entry no
revision uses any more leaves it by itself, so it never outgrows the revisions held.

The folder digests (git tree ids) of a revision are shared the same way with those of the
revision loaded before it: a commit changes the digests of a few folders of thousands, and
each load used to hold its own copy of every folder's path and digest, made anew with every
commit of a long life.
"""

from __future__ import annotations

import threading
import weakref

from gitopsd.engine.loading import ComponentEntry, Repository

EntryKey = tuple[str, str]  # (path, text) of the component's file


class SharedEntries:
    """Component entries of the revisions in memory, by file path and text, held weakly."""

    def __init__(self) -> None:
        self._entries: weakref.WeakValueDictionary[EntryKey, ComponentEntry] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()
        self._trees: dict[str, str] = {}  # the folder digests of the last revision loaded

    def share(self, repository: Repository) -> Repository:
        """`repository`, its components now the entries other revisions in memory have
        for the same files; changed in place, before anyone else holds it."""
        components = repository.components
        with self._lock:
            for name, entry in components.items():
                key = (entry.source.path, entry.source.text)
                shared = self._entries.setdefault(key, entry)
                if shared is not entry:
                    components[name] = shared
        return repository

    def share_trees(self, trees: dict[str, str]) -> dict[str, str]:
        """`trees` (folder path -> git tree id), made of the last revision's paths and ids
        where they are the same."""
        with self._lock:
            last = self._trees
            shared = {path: tree for path, tree in last.items() if trees.get(path) == tree}
            shared.update((path, tree) for path, tree in trees.items() if path not in shared)
            self._trees = shared
        return shared
