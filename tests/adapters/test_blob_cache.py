"""Blob contents kept by id within a budget, and read through the git source."""

from __future__ import annotations

from pathlib import Path

from gitopsd.adapters.blob_cache import BlobCache
from gitopsd.adapters.gitrepo import GitSource
from tests.gitrepos import commit_files


def test_kept_blobs_are_known_and_the_least_recently_used_go_over_the_budget() -> None:
    cache = BlobCache(budget=10)
    cache.keep({"a": b"1234", "b": b"5678"})
    assert cache.known(["a", "b", "c"]) == {"a": b"1234", "b": b"5678"}
    cache.known(["a"])  # a is now the most recently used
    cache.keep({"c": b"90ab"})
    assert cache.known(["a", "b", "c"]) == {"a": b"1234", "c": b"90ab"}


def test_keeping_only_some_blobs_forgets_the_others() -> None:
    cache = BlobCache(budget=12)
    cache.keep({"a": b"1234", "b": b"5678"})
    cache.keep_only(["b", "c"])
    assert cache.known(["a", "b", "c"]) == {"b": b"5678"}
    cache.keep({"c": b"90ab", "d": b"cdef"})  # room for both now that a is gone
    assert cache.known(["b", "c", "d"]) == {"b": b"5678", "c": b"90ab", "d": b"cdef"}


def test_a_blob_larger_than_the_budget_is_not_kept() -> None:
    cache = BlobCache(budget=3)
    cache.keep({"big": b"1234"})
    assert cache.known(["big"]) == {}


def test_reading_the_files_of_consecutive_commits_gives_each_its_own_content(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    first = commit_files(repo, {"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
    second = commit_files(repo, {"a.yaml": "a: 2\n", "b.yaml": "b: 1\n", "c.yaml": "b: 1\n"})
    with GitSource.open(str(repo), branch=None, data_dir=tmp_path / "data") as source:
        read = {
            sha: source.read_blobs(source.list_files(sha, wanted=lambda _: True))
            for sha in (first, second, first)
        }
    assert read[first] == {"a.yaml": b"a: 1\n", "b.yaml": b"b: 1\n"}
    assert read[second] == {"a.yaml": b"a: 2\n", "b.yaml": b"b: 1\n", "c.yaml": b"b: 1\n"}
