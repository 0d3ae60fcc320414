"""Read-only checkouts of revisions under the data folder, from which drivers and gates run.

Drivers run in the component's folder of the revision being applied, never in the user's
working tree: `checkouts/<sha>/` is exported once from git, made read-only, reused by every
run of that revision, and pruned when no environment needs it any more.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from gitopsd.adapters.gitrepo import GitSource

WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


class CheckoutCache:
    """`path(revision)` gives a complete, read-only tree of that commit."""

    def __init__(self, source: GitSource, root: Path, *, keep: int = 10) -> None:
        self._source = source
        self._root = root
        self._keep = keep
        self._lock = threading.Lock()

    def path(self, revision: str) -> Path:
        sha = self._source.resolve(revision)
        target = self._root / sha
        with self._lock:
            if not target.exists():
                self._export(sha, target)
        os.utime(target)  # most recently used, for pruning
        return target

    def prune(self, *, pinned: Iterable[str] = ()) -> list[str]:
        """Remove all but the `keep` most recently used checkouts and the pinned ones."""
        if not self._root.exists():
            return []
        keep = set(pinned)
        trees = sorted(
            (p for p in self._root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        removed = []
        for tree in trees[self._keep :]:
            if tree.name not in keep:
                _remove_read_only(tree)
                removed.append(tree.name)
        return removed

    def _export(self, sha: str, target: Path) -> None:
        """Export into a scratch folder, then rename: a checkout is complete or absent.

        Another process may export the same revision at the same moment (two commands
        started together): whichever renames second finds the checkout there, complete,
        and discards its own copy."""
        self._root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=self._root))
        try:
            self._source.export(sha, scratch)
            _make_read_only(scratch)
            scratch.rename(target)
        except OSError:
            _remove_read_only(scratch)
            if not target.is_dir():
                raise
        except BaseException:
            _remove_read_only(scratch)
            raise


def _make_read_only(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~WRITE_BITS)
    for folder, _, _ in os.walk(root, topdown=False):
        Path(folder).chmod(Path(folder).stat().st_mode & ~WRITE_BITS)


def _remove_read_only(root: Path) -> None:
    if not root.exists():
        return
    for folder, _, _ in os.walk(root):
        Path(folder).chmod(Path(folder).stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(root)
