"""The folder for the call files: a private one in memory where the machine has it, and
never one that someone else could write to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitopsd.adapters.call_folder import call_files_folder


@pytest.fixture
def shm(tmp_path: Path) -> Path:
    folder = tmp_path / "shm"
    folder.mkdir()
    folder.chmod(0o1777)  # as /dev/shm: anyone may create in it
    return folder


def choose(tmp_path: Path, shm: Path, **environ: str) -> Path:
    return call_files_folder(tmp_path / "fallback", environ=environ, shared_memory=shm)


def mine(shm: Path) -> Path:
    return shm / f"gitopsd-{os.getuid()}"


def test_systemds_runtime_directory_comes_first(tmp_path: Path, shm: Path) -> None:
    runtime = tmp_path / "run" / "gitopsd"
    runtime.mkdir(parents=True, mode=0o755)  # systemd's default mode: only we can write
    chosen = choose(tmp_path, shm, RUNTIME_DIRECTORY=str(runtime), XDG_RUNTIME_DIR=str(tmp_path))
    assert chosen == runtime


def test_then_the_users_runtime_folder(tmp_path: Path, shm: Path) -> None:
    user = tmp_path / "user"
    user.mkdir(mode=0o700)
    assert choose(tmp_path, shm, XDG_RUNTIME_DIR=str(user)) == user / "gitopsd"
    assert (user / "gitopsd").stat().st_mode & 0o777 == 0o700


def test_then_shared_memory_in_a_folder_made_private(tmp_path: Path, shm: Path) -> None:
    assert choose(tmp_path, shm) == mine(shm)
    assert mine(shm).stat().st_mode & 0o777 == 0o700
    assert choose(tmp_path, shm) == mine(shm)  # found again, as made


def test_a_relative_runtime_folder_is_ignored(tmp_path: Path, shm: Path) -> None:
    assert choose(tmp_path, shm, XDG_RUNTIME_DIR="relative/run") == mine(shm)


def test_a_folder_others_can_write_to_is_not_used(tmp_path: Path, shm: Path) -> None:
    mine(shm).mkdir(mode=0o700)
    mine(shm).chmod(0o777)  # made by someone else, or left so
    assert choose(tmp_path, shm) == tmp_path / "fallback"


def test_a_symbolic_link_planted_in_shared_memory_is_not_followed(
    tmp_path: Path, shm: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    mine(shm).symlink_to(target)
    assert choose(tmp_path, shm) == tmp_path / "fallback"


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a folder to another user")
def test_a_folder_another_user_owns_is_not_used(tmp_path: Path, shm: Path) -> None:
    mine(shm).mkdir(mode=0o700)
    os.chown(mine(shm), 65534, 65534)
    assert choose(tmp_path, shm) == tmp_path / "fallback"


def test_without_shared_memory_the_data_folder(tmp_path: Path) -> None:
    assert choose(tmp_path, tmp_path / "no-shm") == tmp_path / "fallback"
