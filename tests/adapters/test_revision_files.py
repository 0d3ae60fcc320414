"""Text kept on disk by commit between processes: by tag, private, never half written."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitopsd.adapters.revision_files import RevisionFiles

SHA = "a" * 40
TAG = "gitopsd-1.0.format-1"


def test_a_text_comes_back_as_it_was_put_a_line_at_a_time(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache", tag=TAG)
    assert list(files.lines(SHA)) == []
    files.put(SHA, '{"components": ["vpc", "aks"]}\n\n{"n": 2}\n')
    assert list(files.lines(SHA)) == ['{"components": ["vpc", "aks"]}', '{"n": 2}']
    again = RevisionFiles(tmp_path / "cache", tag=TAG)  # another process, same folder
    assert list(again.lines(SHA)) == ['{"components": ["vpc", "aks"]}', '{"n": 2}']


def test_the_lines_of_a_damaged_file_end_before_the_damage(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache", tag=TAG)
    files.put(SHA, "first\nsecond\n")
    files.path(SHA).write_bytes(b"first\n" + b"\xff" * 10_000 + b"\nlast\n")
    assert "last" not in list(files.lines(SHA))


def test_the_folder_and_files_are_private(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache", tag=TAG)
    files.put(SHA, "secret inputs")
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE(files.path(SHA).stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{SHA}.{TAG}.json"]  # no scratch


def test_a_file_of_another_tag_is_never_read(tmp_path: Path) -> None:
    RevisionFiles(tmp_path / "cache", tag=TAG).put(SHA, "this version")
    other = RevisionFiles(tmp_path / "cache", tag="gitopsd-2.0.format-1")
    assert list(other.lines(SHA)) == []
    other.put(SHA, "the other version")
    assert list(RevisionFiles(tmp_path / "cache", tag=TAG).lines(SHA)) == ["this version"]


def test_only_the_newest_files_are_kept_whatever_wrote_them(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache", keep=3, tag=TAG)
    shas = [f"{n:040x}" for n in range(5)]
    for age, sha in enumerate(shas):
        files.put(sha, sha)
        os.utime(files.path(sha), ns=(age * 10**9, age * 10**9))  # oldest first
    leftover = tmp_path / "cache" / f"{SHA}.0123456789abcdef.pickle"  # an older gitopsd's
    leftover.write_bytes(b"old")
    os.utime(leftover, ns=(0, 0))
    files.put(shas[4], shas[4])  # any put prunes
    assert [list(files.lines(sha)) for sha in shas] == [[], [], [shas[2]], [shas[3]], [shas[4]]]
    assert not leftover.exists()


def test_a_folder_that_cannot_be_written_is_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="gitopsd.revisions"):
        RevisionFiles(blocker, tag=TAG).put(SHA, "value")
    assert list(RevisionFiles(blocker, tag=TAG).lines(SHA)) == []
    assert "cannot keep revision aaaaaaaaaaaa on disk" in caplog.text


def test_a_text_made_part_by_part_is_kept_whole_or_not_at_all(tmp_path: Path) -> None:
    files = RevisionFiles(tmp_path / "cache", tag=TAG)
    files.put(SHA, (f"line {n}\n" for n in range(3)))
    assert list(files.lines(SHA)) == ["line 0", "line 1", "line 2"]

    def broken() -> Iterator[str]:
        yield "a first line\n"
        raise ValueError("a part that cannot be made")

    other = "b" * 40
    with pytest.raises(ValueError, match="cannot be made"):
        files.put(other, broken())
    assert list(files.lines(other)) == []
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [files.path(SHA).name]
