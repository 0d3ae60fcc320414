"""Read-only checkouts of revisions, and the folder digests planning compares."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitopsd.adapters.checkouts import CheckoutCache
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.errors import GitSourceError
from tests.gitrepos import commit_files


def trees_in(root: Path) -> list[str]:
    """What the checkouts folder holds, but the spare copy the next export starts from and
    pruned checkouts still being removed in the background."""
    hidden = (".spare-", ".removing-")
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(hidden))


@pytest.fixture
def source(tmp_path: Path) -> Iterator[GitSource]:
    with GitSource.open(str(tmp_path / "repo"), branch=None, data_dir=tmp_path) as opened:
        yield opened


@pytest.fixture(autouse=True)
def repo(tmp_path: Path) -> Path:
    commit_files(tmp_path / "repo", {"components/a/run.sh": "#!/bin/sh\necho a\n", "x": "1"})
    (tmp_path / "repo" / "components" / "a" / "run.sh").chmod(0o755)
    commit_files(tmp_path / "repo", {}, message="mode")
    return tmp_path / "repo"


def test_a_checkout_holds_the_commit_read_only_with_modes_kept(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    (repo / "x").write_text("uncommitted")
    cache = CheckoutCache(source, tmp_path / "checkouts")
    tree = cache.path(source.head())
    assert tree == tmp_path / "checkouts" / source.head()
    assert (tree / "x").read_text() == "1"
    script = tree / "components" / "a" / "run.sh"
    assert os.access(script, os.X_OK)
    assert not script.stat().st_mode & 0o222
    assert not (tree / "components").stat().st_mode & 0o222


def test_a_checkout_is_reused_and_exported_once_under_concurrency(
    source: GitSource, tmp_path: Path
) -> None:
    cache = CheckoutCache(source, tmp_path / "checkouts")
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(cache.path("HEAD"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1
    assert trees_in(tmp_path / "checkouts") == [source.head()]


class Racing:
    """A git source whose export lets another process's cache finish the same checkout
    first, as when two commands start at the same moment."""

    def __init__(self, source: GitSource, other: CheckoutCache) -> None:
        self.source, self.other = source, other

    def resolve(self, revision: str) -> str:
        return self.source.resolve(revision)

    def export(self, sha: str, folder: Path) -> None:
        self.source.export(sha, folder)
        self.other.path(sha)  # the other process renames its export into place first


def test_an_export_that_lost_a_race_between_processes_uses_the_winners_checkout(
    source: GitSource, tmp_path: Path
) -> None:
    root = tmp_path / "checkouts"
    winner = CheckoutCache(source, root)
    loser = CheckoutCache(Racing(source, winner), root)  # type: ignore[arg-type]
    tree = loser.path("HEAD")
    assert tree == root / source.head()
    assert (tree / "x").read_text() == "1"
    assert trees_in(root) == [source.head()]  # its own copy is gone


def test_prune_keeps_the_most_recent_and_the_pinned(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    shas = [source.head()]
    for index in range(3):
        shas.append(commit_files(repo, {"x": str(index + 2)}))
    cache = CheckoutCache(source, tmp_path / "checkouts", keep=2)
    for index, sha in enumerate(shas):
        os.utime(cache.path(sha), (1000 + index, 1000 + index))
    removed = cache.prune(pinned=[shas[0]])
    assert removed == [shas[1]]
    assert trees_in(tmp_path / "checkouts") == sorted([shas[0], shas[2], shas[3]])
    # set aside at once, then removed in the background: nothing of it is left
    wait_for(lambda: not any((tmp_path / "checkouts").glob(".removing-*")))
    assert not any((tmp_path / "checkouts").glob(".removing-*"))


def test_what_a_killed_pruning_left_set_aside_is_removed_when_a_cache_starts(
    source: GitSource, tmp_path: Path
) -> None:
    root = tmp_path / "checkouts"
    left = root / ".removing-0123abcd-5678"  # a checkout pruning renamed, then was killed
    (left / "components" / "a").mkdir(parents=True)
    (left / "components" / "a" / "run.sh").write_text("echo a\n")
    for path in (left / "components" / "a" / "run.sh", left / "components" / "a", left):
        path.chmod(0o500 if path.is_dir() else 0o400)  # read-only, as checkouts are
    CheckoutCache(source, root)
    wait_for(lambda: not left.exists())
    assert not left.exists()


def test_a_link_set_aside_is_removed_and_what_it_points_to_is_left_as_it_was(
    source: GitSource, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "kept").mkdir(parents=True)
    (elsewhere / "kept" / "file").write_text("not gitopsd's")
    for path in (elsewhere / "kept" / "file", elsewhere / "kept", elsewhere):
        path.chmod(0o400 if path.is_file() else 0o500)
    root = tmp_path / "checkouts"
    root.mkdir()
    link = root / ".removing-0123abcd-5678"
    link.symlink_to(elsewhere)
    CheckoutCache(source, root)
    wait_for(lambda: not link.is_symlink())
    assert not link.is_symlink()
    assert (elsewhere / "kept" / "file").read_text() == "not gitopsd's"
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (elsewhere, elsewhere / "kept")] == [
        "0o500",
        "0o500",
    ]


def test_folder_trees_change_only_where_files_change(source: GitSource, repo: Path) -> None:
    before = source.folder_trees(source.head())
    commit_files(repo, {"components/b/file": "new", "x": "changed"})
    source.fetch()
    after = source.folder_trees(source.head())
    assert after["components/a"] == before["components/a"]
    assert "components/b" in after and "components/b" not in before
    assert after["components"] != before["components"]
    assert after[""] != before[""]


def tree_of(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry below `root`: its content (or link target) and its executable bit."""
    found: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = ("-> " + os.readlink(path), 0)
        elif path.is_file():
            found[key] = (path.read_text(), path.stat().st_mode & 0o111)
        else:
            found[key] = ("dir", 0)
    return found


def test_a_checkout_made_from_an_older_one_equals_a_full_export_and_spares_the_older(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    cache = CheckoutCache(source, tmp_path / "checkouts")
    old = cache.path(source.head())
    before = tree_of(old)
    (repo / "gone").mkdir()
    (repo / "gone" / "f").write_text("to be removed")
    # names git would read as patterns: only the named file is written
    glob = {"glob/a*b": "star", "glob/ab": "plain", "glob/[a]": "brackets", "glob/a": "a"}
    commit_files(repo, {"dir-then-file/x": "1", "x": "changed", **glob}, message="middle")
    cache.path(source.head())
    (repo / "components" / "a" / "run.sh").chmod(0o644)
    os.symlink("x", repo / "link")
    changed = {"glob/a*b": "star 2", "glob/[a]": "brackets 2"}
    commit_files(
        repo, {"components/b/new.txt": "new", "x": "changed again", **changed}, message="next"
    )
    commit_files(repo, {}, replace=False, message="same")
    os.remove(repo / "gone" / "f")
    os.remove(repo / "dir-then-file" / "x")
    (repo / "dir-then-file").rmdir()
    commit_files(repo, {"dir-then-file": "now a file"}, message="last")
    incremental = cache.path(source.head())
    full = tmp_path / "full"
    full.mkdir()
    source.export(source.head(), full)
    assert tree_of(incremental) == tree_of(full)
    assert tree_of(old) == before  # hard links are never written through
    assert not (incremental / "x").stat().st_mode & 0o222
    assert writable_entries(incremental) == []


def writable_entries(root: Path) -> list[str]:
    """Entries below `root` (and root itself) that anyone may write; links have no modes."""
    entries = [root, *root.rglob("*")]
    return [str(p) for p in entries if not p.is_symlink() and p.stat().st_mode & 0o222]


def test_a_prepared_checkout_is_exported_in_the_background_and_then_reused(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    cache = CheckoutCache(source, tmp_path / "checkouts")
    cache.path(source.head())
    commit_files(repo, {"components/c/new.txt": "new"}, message="next")
    target = tmp_path / "checkouts" / source.head()
    cache.prepare(source.head())
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (target / "components" / "c" / "new.txt").read_text() == "new"
    assert writable_entries(target) == []
    assert cache.path(source.head()) == target


def test_preparing_an_unknown_revision_leaves_the_error_to_whoever_needs_it(
    source: GitSource, tmp_path: Path
) -> None:
    cache = CheckoutCache(source, tmp_path / "checkouts")
    cache.prepare("0" * 40)
    with pytest.raises(GitSourceError):
        cache.path("0" * 40)


def test_two_prunings_at_once_remove_each_old_checkout_once_without_error(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    shas = [source.head()] + [commit_files(repo, {"x": str(n)}) for n in range(2, 8)]
    root = tmp_path / "checkouts"
    cache = CheckoutCache(source, root, keep=2)
    other = CheckoutCache(source, root, keep=2)  # another process's cache of the same folder
    for index, sha in enumerate(shas):
        os.utime(cache.path(sha), (1000 + index, 1000 + index))
    removed: list[str] = []
    errors: list[BaseException] = []

    def prune(by: CheckoutCache) -> None:
        try:
            removed.extend(by.prune())
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=prune, args=(c,)) for c in (cache, cache, other, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert trees_in(root) == sorted(shas[-2:])
    assert set(removed) == set(shas[:-2])


def wait_for(found: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not found() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_checkout_made_from_the_spare_copy_equals_a_full_export(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    """After an export a spare copy of it is made in the background; the next export
    starts from it, and what it makes is the commit exactly, read-only."""
    root = tmp_path / "checkouts"
    cache = CheckoutCache(source, root)
    old = source.head()
    cache.path(old)
    wait_for(lambda: (root / f".spare-of-{old}").is_dir())
    spare_folder = (root / f".spare-of-{old}").stat().st_ino
    (repo / "components" / "a" / "run.sh").chmod(0o644)
    os.remove(repo / "x")
    commit_files(repo, {"new/deep/file": "n", "components/a/more": "m"}, replace=False)
    new = source.head()
    made = cache.path(new)
    assert made.stat().st_ino == spare_folder  # the spare itself, taken (renamed into place)
    full = tmp_path / "full"
    full.mkdir()
    source.export(new, full)
    assert tree_of(made) == tree_of(full)
    assert writable_entries(made) == []
    assert tree_of(root / old)["x"] == ("1", 0)  # the older checkout is untouched
    wait_for(lambda: (root / f".spare-of-{new}").is_dir())
    assert trees_in(root) == sorted([old, new])


def test_a_checkout_made_from_an_older_one_without_a_spare_equals_a_full_export(
    source: GitSource, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No spare made yet (commits faster than the housekeeper): the next export copies the
    latest checkout by `cp -al`, opens only the folders along the changes, and ends as the
    commit exactly, read-only, the older checkout untouched."""
    monkeypatch.setattr(CheckoutCache, "_make_spare", lambda self, checkout: None)
    root = tmp_path / "checkouts"
    cache = CheckoutCache(source, root)
    old = source.head()
    cache.path(old)
    (repo / "components" / "a" / "run.sh").chmod(0o644)
    os.remove(repo / "x")
    commit_files(repo, {"new/deep/file": "n", "components/a/more": "m"}, replace=False)
    new = source.head()
    made = cache.path(new)
    full = tmp_path / "full"
    full.mkdir()
    source.export(new, full)
    assert tree_of(made) == tree_of(full)
    assert writable_entries(made) == []
    assert tree_of(root / old)["x"] == ("1", 0)
    assert (made / "components" / "a" / "more").stat().st_nlink == 1  # written, not linked
    assert (made / "components" / "a" / "run.sh").stat().st_ino != (
        root / old / "components" / "a" / "run.sh"
    ).stat().st_ino  # its mode changed: written again


def test_spares_asked_for_while_the_housekeeper_is_busy_come_down_to_the_newest(
    source: GitSource, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits coming faster than spares are copied do not queue a copy each: one waiting
    is replaced by the next, so the housekeeper's backlog stays bounded and only the newest
    checkout is copied after the one under way."""
    root = tmp_path / "checkouts"
    copied: list[str] = []
    busy = threading.Event()
    make_spare = CheckoutCache._make_spare

    def slow_spare(self: CheckoutCache, checkout: Path) -> None:
        copied.append(checkout.name)
        busy.wait(30)  # the first copy still going while the commits below come
        make_spare(self, checkout)

    monkeypatch.setattr(CheckoutCache, "_make_spare", slow_spare)
    cache = CheckoutCache(source, root, keep=2)
    first = source.head()
    cache.path(first)
    wait_for(lambda: copied == [first])
    later = [commit_files(repo, {"x": str(n)}) for n in range(2, 7)]
    for sha in later:
        cache.path(sha)
        cache.prune()
    busy.set()
    wait_for(lambda: (root / f".spare-of-{later[-1]}").is_dir())
    assert copied == [first, later[-1]]
    assert trees_in(root) == sorted(later[-2:])


def test_pruning_a_checkout_leaves_the_kept_ones_read_only(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    """A checkout shares the files it has in common with the one it was made from (hard
    links): removing the pruned one must not give its files' write bits back, or the kept
    checkout's files (the same files) could be written by the drivers run from it."""
    root = tmp_path / "checkouts"
    cache = CheckoutCache(source, root, keep=1)
    old = source.head()
    os.utime(cache.path(old), (1000, 1000))
    new = commit_files(repo, {"y": "only in the new commit"})
    kept = cache.path(new)
    assert cache.prune() == [old]
    wait_for(lambda: not any(root.glob(".removing-*")))
    assert not any(root.glob(".removing-*"))
    assert writable_entries(kept) == []


def test_a_file_named_in_bytes_that_are_not_utf8_is_checked_out_under_its_own_name(
    source: GitSource, repo: Path, tmp_path: Path
) -> None:
    """git names files in bytes: a name in Latin-1 (a Windows user's `café.md`) is still
    part of the commit, listed, exported and changed like any other."""
    name = os.fsencode(repo / "docs") + b"/caf\xe9.md"
    os.makedirs(repo / "docs")
    with open(name, "wb") as file:
        file.write(b"one\n")
    first = commit_files(repo, {})
    with open(name, "wb") as file:
        file.write(b"two\n")
    second = commit_files(repo, {"x": "2"})
    cache = CheckoutCache(source, tmp_path / "checkouts")
    for sha, content in ((first, b"one\n"), (second, b"two\n")):
        checked_out = os.fsencode(cache.path(sha)) + b"/docs/caf\xe9.md"
        with open(checked_out, "rb") as file:
            assert file.read() == content
    listed = source.listing(second).files
    assert os.fsdecode(b"docs/caf\xe9.md") in listed
    assert source.read_blobs({"f": listed[os.fsdecode(b"docs/caf\xe9.md")]}) == {"f": b"two\n"}


def test_an_export_a_killed_process_left_is_removed_when_a_cache_starts(
    source: GitSource, tmp_path: Path
) -> None:
    root = tmp_path / "checkouts"
    left, under_way = root / ".export-killed", root / ".export-another-process"
    for scratch in (left, under_way):
        (scratch / "components").mkdir(parents=True)
        (scratch / "components" / "x").write_text("1")
        for path in (scratch / "components" / "x", scratch / "components", scratch):
            path.chmod(0o500 if path.is_dir() else 0o400)  # read-only, as exports are made
    two_hours_ago = time.time() - 7200
    os.utime(left, (two_hours_ago, two_hours_ago))
    CheckoutCache(source, root)
    wait_for(lambda: not left.exists())
    assert not left.exists()
    assert (under_way / "components" / "x").read_text() == "1"  # another process's, still going


class FullDisk:
    """A git source whose export writes part of the tree, then meets a full disk."""

    def __init__(self, source: GitSource) -> None:
        self.source = source

    def resolve(self, revision: str) -> str:
        return self.source.resolve(revision)

    def changes(self, base: str, sha: str) -> tuple[list[str], list[str]]:
        return self.source.changes(base, sha)

    def export(self, sha: str, folder: Path, paths: object = None) -> None:
        (folder / "partial").write_text("half")
        raise OSError(28, "No space left on device")


def test_a_failed_export_reports_its_own_error_when_its_folder_cannot_be_removed_either(
    source: GitSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "rm").write_text("#!/bin/sh\necho 'rm: Read-only file system' >&2\nexit 1\n")
    (tools / "rm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    cache = CheckoutCache(FullDisk(source), tmp_path / "checkouts")  # type: ignore[arg-type]
    with pytest.raises(OSError, match="No space left on device"):
        cache.path(source.head())
    left = list((tmp_path / "checkouts").glob(".export-*"))
    assert len(left) == 1  # left for a later cache to remove, once it is an hour old
    assert trees_in(tmp_path / "checkouts") == [left[0].name]  # and no checkout
