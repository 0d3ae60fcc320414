"""Read-only checkouts of revisions under the data folder, from which drivers and gates run.

Drivers run in the component's folder of the revision being applied, never in the user's
working tree: `checkouts/<sha>/` is exported once from git, made read-only, reused by every
run of that revision, and pruned when no environment needs it any more.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gitopsd.adapters.gitrepo import GitSource
from gitopsd.errors import GitSourceError

WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
MAX_CHANGED = 2_000  # more changed paths than this: export everything, not the difference
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SPARE_PREFIX = ".spare-of-"  # a copy of the newest checkout, made while runs go
BUILDING_PREFIX = ".spare-building-"  # a spare being copied
REMOVING_PREFIX = ".removing-"  # a pruned checkout being removed
EXPORT_PREFIX = ".export-"  # a checkout being exported, renamed into place when complete
ABANDONED_AFTER = 3600.0  # seconds: a scratch folder this old was left by a killed process

log = logging.getLogger(__name__)


class CheckoutCache:
    """`path(revision)` gives a complete, read-only tree of that commit."""

    def __init__(self, source: GitSource, root: Path, *, keep: int = 10) -> None:
        self._source = source
        self._root = root
        self._keep = keep
        self._lock = threading.Lock()
        self._removing = threading.Lock()  # one thread at a time removes what was set aside
        self._exporter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkout-export")
        # copying spares: never in the way of an export
        self._housekeeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkout-keep")
        # housekeeping asked for and not started yet, by kind (see `_housekeeping`)
        self._chores: dict[str, Callable[[], None]] = {}
        self._chores_lock = threading.Lock()
        # what a killed process left (set aside, half exported) goes now, not after the next run
        self._housekeeping("left behind", self._remove_left_behind)

    def prepare(self, revision: str) -> None:
        """Start exporting `revision` in the background and return at once.

        A new head's checkout is then built while its manifests are parsed and validated,
        and the run that needs it finds it ready (or waits in `path` for the rest). A
        failure here is only logged: that run's own `path` exports again and reports it."""
        self._in_background(self._prepared, revision)

    def _in_background(self, work: Callable[..., None], *args: object) -> None:
        """`work(*args)` in the exporter thread; nothing once the interpreter is stopping."""
        with contextlib.suppress(RuntimeError):  # "cannot schedule new futures after shutdown"
            self._exporter.submit(work, *args)

    def _housekeeping(self, kind: str, chore: Callable[[], None]) -> None:
        """`chore` in the housekeeper's thread (copying a spare, removing what was set
        aside), so that an export never waits behind it; nothing once the interpreter is
        stopping.

        A chore of a `kind` already waiting replaces it rather than queueing behind it:
        only the newest checkout's spare is worth copying, and a removal takes whatever
        is set aside when it starts. Commits can come faster than the housekeeper copies
        and removes a thousand folders: queued one per export and pruning, 26 to 38 tasks
        waited with their futures after 100 to 350 commits of `benchmarks/memory.py` (a
        commit every 0.7 s), each to be run in turn, most of them copies of checkouts
        pruned meanwhile. Now at most one of each kind waits."""
        with self._chores_lock:
            waiting = kind in self._chores
            self._chores[kind] = chore
        if waiting:
            return
        try:
            self._housekeeper.submit(self._do_chore, kind)
        except RuntimeError:  # "cannot schedule new futures after shutdown"
            with self._chores_lock:
                self._chores.pop(kind, None)

    def _do_chore(self, kind: str) -> None:
        with self._chores_lock:
            chore = self._chores.pop(kind)
        chore()

    def _prepared(self, revision: str) -> None:
        try:
            self.path(revision)
        except (OSError, GitSourceError) as error:
            log.debug("could not prepare the checkout of %s: %s", revision[:12], error)

    def path(self, revision: str) -> Path:
        sha = self._source.resolve(revision)
        target = self._root / sha
        with self._lock:
            made = not target.exists()
            if made:
                self._export(sha, target)
        os.utime(target)  # most recently used, for pruning
        if made:
            self._housekeeping("spare", functools.partial(self._make_spare, target))
        return target

    def prune(self, *, pinned: Iterable[str] = ()) -> list[str]:
        """Remove all but the `keep` most recently used checkouts and the pinned ones.

        Under the lock a doomed checkout is only renamed aside, at once, and its thousand
        folders are removed after, in the housekeeping thread: neither the next export nor
        the caller (an environment's worker, about to take the next commit) waits for
        that. Another process pruning the same folder may take a tree first, which is taken
        as done."""
        keep = set(pinned)
        removed = []
        with self._lock:
            for tree in self._by_last_use()[self._keep :]:
                if tree.name not in keep:
                    self._set_aside(tree)
                    removed.append(tree.name)
        self._housekeeping("removal", self._remove_set_aside)
        return removed

    def _set_aside(self, tree: Path) -> None:
        aside = self._root / f"{REMOVING_PREFIX}{tree.name}-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):  # another process's pruning took it
            tree.rename(aside)

    def _remove_left_behind(self) -> None:
        self._remove_set_aside()
        self._remove_abandoned()

    def _remove_set_aside(self) -> None:
        """Remove what prunings set aside (also what a killed process left set aside), in
        the housekeeping thread.

        One at a time (`_removing`, for caches of the same folder in one process): the
        environments' runs often end together (a new head's in dev, the promotions before
        it in staging and prod), and each walking the same set-aside trees of a thousand
        folders was most of the directories a daemon read. A folder that cannot be removed
        now (a full or read-only data folder) is said in the log and left for the next
        pruning."""
        with self._removing:
            for aside in self._root.glob(REMOVING_PREFIX + "*"):
                try:
                    _remove_read_only(aside)
                except OSError as error:
                    log.warning("a pruned checkout is left for later: %s", error)

    def _by_last_use(self) -> list[Path]:
        """The checkouts, most recently used first (one removed meanwhile left out)."""
        used: list[tuple[float, Path]] = []
        if not self._root.exists():
            return []
        for tree in self._root.iterdir():
            if tree.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                used.append((tree.stat().st_mtime, tree))
        return [tree for _, tree in sorted(used, reverse=True)]

    def _export(self, sha: str, target: Path) -> None:
        """Export into a scratch folder, then rename: a checkout is complete or absent.

        Another process may export the same revision at the same moment (two commands
        started together): whichever renames second finds the checkout there, complete,
        and discards its own copy."""
        self._root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX, dir=self._root))
        try:
            self._fill(sha, scratch)
            scratch.rename(target)
        except OSError:
            _discard(scratch)
            if not target.is_dir():
                raise
        except BaseException:
            _discard(scratch)
            raise

    def _fill(self, sha: str, scratch: Path) -> None:
        """Write the files of `sha` into `scratch` and make them read-only: from a copy of
        an older checkout and what changed since, when there is one (hard links: a
        checkout's files are never written, so the linked ones are read-only already), else
        all of them. A new head usually changes a few files of thousands."""
        for base, copy in self._copies_to_start_from(scratch):
            try:
                write, remove = self._source.changes(base, sha)
                if len(write) + len(remove) <= MAX_CHANGED:
                    folders_closed = copy()
                    _make_writable(scratch, [*write, *remove])
                    _remove_paths(scratch, remove)
                    if write:
                        self._source.export(sha, scratch, paths=write)
                    if folders_closed:  # only the folders along the changes were opened
                        _close_folders(scratch, [*write, *remove])
                        _make_read_only(scratch, files=write, folders=False)
                    else:
                        _make_read_only(scratch, files=write)
                    return
            except (OSError, GitSourceError):  # the base pruned meanwhile, say: start over
                pass
            _remove_read_only(scratch)
            scratch.mkdir()
        self._source.export(sha, scratch)
        _make_read_only(scratch)

    def _copies_to_start_from(self, scratch: Path) -> Iterator[tuple[str, Callable[[], bool]]]:
        """(base sha, how to make `scratch` a copy of its checkout, answering whether its
        folders are read-only already): the spare copy made after the last export, if
        any, else a new copy of the most recently used one."""
        for spare in self._root.glob(SPARE_PREFIX + "*"):
            base = spare.name.removeprefix(SPARE_PREFIX)
            yield base, functools.partial(_take, spare, scratch)
            break
        latest = self._latest()
        if latest is not None:
            yield latest.name, functools.partial(_link_tree, latest, scratch)

    def _make_spare(self, checkout: Path) -> None:
        """Copy `checkout` (hard links, by `cp -al`: no Python in the way of the runs going)
        into the spare the next export starts from, replacing any older spare.

        Making a checkout's thousand folders is most of the time from a commit to its first
        driver; done here, after a run starts, the next commit finds them made."""
        building = Path(tempfile.mkdtemp(prefix=BUILDING_PREFIX, dir=self._root))
        try:
            _link_tree(checkout, building)
            with self._lock:
                for old in self._root.glob(SPARE_PREFIX + "*"):
                    _remove_read_only(old)
                building.rename(self._root / (SPARE_PREFIX + checkout.name))
        except OSError as error:
            log.debug("no spare checkout: %s", error)
            _discard(building)
        self._remove_abandoned()

    def _remove_abandoned(self) -> None:
        """Spares and exports a killed process was still making (an hour is far longer
        than either; another process's may be under way, so younger ones stay)."""
        abandoned_before = time.time() - ABANDONED_AFTER
        for prefix in (BUILDING_PREFIX, EXPORT_PREFIX):
            for scratch in self._root.glob(prefix + "*"):
                with contextlib.suppress(OSError):
                    if scratch.stat().st_mtime < abandoned_before:
                        _remove_read_only(scratch)

    def _latest(self) -> Path | None:
        trees = [
            p
            for p in self._root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and FULL_SHA.fullmatch(p.name)
        ]
        return max(trees, key=lambda p: p.stat().st_mtime, default=None)


def _link_tree(base: Path, target: Path) -> bool:
    """`target` (an empty folder) as a copy of `base` whose files are hard links to base's
    (never written), by `cp -al`; its folders keep base's read-only modes (True), so only
    those along the changes are opened and closed again. Spares are made the same way.

    Walked in Python, a checkout's thousand folders were two thousand directory reads a
    commit, each a 32 KiB buffer of the C allocator, beside the folder names and paths
    of every entry: transient work in the daemon's heaps, between blocks that live on
    (benchmarks/README.md, memory: heaptrack). OSError if it fails: the caller starts over
    from a full export."""
    copied = subprocess.run(
        ["cp", "-al", "--no-target-directory", str(base), str(target)],
        capture_output=True,
        check=False,
    )
    if copied.returncode != 0:
        raise OSError(f"cannot copy {base}: {copied.stderr.decode(errors='replace').strip()}")
    return True


def _take(spare: Path, scratch: Path) -> bool:
    """Move the spare into the place of the (empty) scratch folder; a copy by `cp -a`
    keeps the read-only folders of the checkout it copied."""
    scratch.rmdir()
    spare.rename(scratch)
    return True


def _make_writable(root: Path, paths: Iterable[str]) -> None:
    """Give back the owner's write bit to the folders that hold `paths` (a copy by `cp -a`
    keeps the read-only modes of the checkout it copied)."""
    for relative in paths:
        folder = (root / relative).parent
        while folder != root and not folder.is_dir():
            folder = folder.parent
        while True:
            mode = folder.stat().st_mode
            if not mode & stat.S_IWUSR:
                folder.chmod(mode | stat.S_IWUSR)
            if folder == root:
                break
            folder = folder.parent


def _remove_paths(root: Path, paths: Iterable[str]) -> None:
    """Unlink each path (never write through a link) and the folders left empty by it."""
    for relative in paths:
        path = root / relative
        if path.is_symlink() or path.is_file():
            path.unlink()
        parent = path.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _close_folders(root: Path, paths: Iterable[str]) -> None:
    """Take the write bits off the folders from each of `paths` up to `root` (those a
    change opened or made; one removed with its last file is skipped)."""
    for relative in paths:
        folder = (root / relative).parent
        while True:
            with contextlib.suppress(FileNotFoundError):
                mode = folder.stat().st_mode
                if mode & WRITE_BITS:
                    folder.chmod(mode & ~WRITE_BITS)
            if folder == root:
                break
            folder = folder.parent


def _make_read_only(
    root: Path, *, files: Iterable[str] | None = None, folders: bool = True
) -> None:
    """Take the write bits off `files` (default: every file under `root`) and, unless
    `folders` is false, off every folder; symbolic links have no modes of their own."""
    if files is None:
        files = (
            os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root)
            for name in names
        )
    for relative in files:
        path = os.path.join(root, relative)
        if not os.path.islink(path):
            os.chmod(path, os.stat(path).st_mode & ~WRITE_BITS)
    if folders:
        for folder, _, _ in os.walk(root, topdown=False):
            os.chmod(folder, os.stat(folder).st_mode & ~WRITE_BITS)


def _discard(scratch: Path) -> None:
    """Remove an export that failed or was interrupted; if that fails too, the export's own
    error is the one raised, and the folder is left for a later cache (`_remove_abandoned`)."""
    try:
        _remove_read_only(scratch)
    except OSError as error:
        log.warning("an unfinished checkout is left for later: %s", error)


def _remove_read_only(root: Path) -> None:
    """Remove a checkout, also while another process removes the same one; OSError if it
    cannot be removed (or `find` or `rm` cannot be started). By `find`, `chmod` and `rm
    -rf`, as the spare is copied by `cp -al`: a thousand folders walked and removed in
    Python held the interpreter for 0.1 to 0.4 s a commit, beside the run that commit
    started (benchmarks/README.md). A link is removed, never followed: `chmod` would change
    what it points to.

    Only the folders are given their write bit back (`find -type d`, never `chmod -R`): a
    checkout's files are hard links shared with the checkouts made from it and with the
    spare, and a file's mode is its inode's, so opening the pruned tree's files would make
    the kept checkouts' files writable to the drivers run from them. The path is absolute:
    `find` has no `--`, and would read a name starting with `-` as a test."""
    if not root.is_symlink():
        closed = ["-type", "d", "!", "-perm", "-u+w"]
        opening = ["find", os.path.abspath(root), *closed, "-exec", "chmod", "u+w", "--", "{}", "+"]
        subprocess.run(opening, capture_output=True, check=False)  # what it cannot open, rm says
    removed = subprocess.run(["rm", "-rf", "--", str(root)], capture_output=True, check=False)
    if removed.returncode != 0 and (root.exists() or root.is_symlink()):
        raise OSError(f"cannot remove {root}: {removed.stderr.decode(errors='replace').strip()}")
