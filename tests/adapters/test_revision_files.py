"""Loaded revisions kept on disk between processes: by commit and by build, never half read."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gitopsd.adapters import revision_files
from gitopsd.adapters.revision_files import RevisionFiles

SHA = "a" * 40


def test_a_value_comes_back_as_it_was_put(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache")
    assert files.get(SHA) is None
    value = {"components": ["vpc", "aks"], "problems": []}
    files.put(SHA, value)
    assert files.get(SHA) == value
    assert RevisionFiles(tmp_path / "cache").get(SHA) == value  # another process, same folder


def test_the_folder_and_files_are_private(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache")
    files.put(SHA, "secret inputs")
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE(files.path(SHA).stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [files.path(SHA).name]  # no scratch


def test_a_file_of_another_build_is_never_read(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache")
    files.put(SHA, "this build")
    other = files.path(SHA).with_name(f"{SHA}.0123456789abcdef.pickle")
    files.path(SHA).rename(other)
    assert files.get(SHA) is None
    assert other.exists()  # it ages out through pruning, not on sight


def test_an_unreadable_file_is_a_miss_and_is_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = RevisionFiles(tmp_path / "cache")
    files.put(SHA, list(range(1000)))
    data = files.path(SHA).read_bytes()
    files.path(SHA).write_bytes(data[: len(data) // 2])  # cut short, as by a crash
    with caplog.at_level(logging.WARNING, logger="gitopsd.revisions"):
        assert files.get(SHA) is None
    assert not files.path(SHA).exists()
    assert "ignoring unreadable cached revision" in caplog.text


def test_only_the_newest_files_are_kept(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache", keep=3)
    shas = [f"{n:040x}" for n in range(5)]
    for age, sha in enumerate(shas):
        files.put(sha, sha)
        os.utime(files.path(sha), ns=(age * 10**9, age * 10**9))  # oldest first
    files.put(shas[4], shas[4])  # any put prunes
    assert [files.get(sha) for sha in shas] == [None, None, shas[2], shas[3], shas[4]]


def test_a_folder_that_cannot_be_written_is_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="gitopsd.revisions"):
        RevisionFiles(blocker).put(SHA, "value")
    assert RevisionFiles(blocker).get(SHA) is None
    assert "cannot keep revision aaaaaaaaaaaa on disk" in caplog.text


def test_the_build_digest_changes_when_a_source_file_changes(tmp_path: Path) -> None:
    """A copy of the package: the digest is stable, and an edit to any module changes it."""
    import gitopsd

    package = Path(gitopsd.__file__).parent
    copy = tmp_path / "src" / "gitopsd"
    copy.parent.mkdir()
    subprocess.run(["cp", "-a", str(package), str(copy)], check=True)
    probe = "from gitopsd.adapters.revision_files import code_digest; print(code_digest())"

    def digest() -> str:
        env = {**os.environ, "PYTHONPATH": str(copy.parent)}
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    first = digest()
    assert first == digest() and first != revision_files.code_digest()  # other files, paths
    with (copy / "engine" / "validation.py").open("a") as module:
        module.write("\n# a rule changed\n")
    assert digest() != first
