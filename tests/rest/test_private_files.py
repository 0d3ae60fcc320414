"""Everything gitopsd writes under its data folder is private to its user (0600 / 0700),
whatever the umask it was started with: the real binary, a real repository and drivers."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adapters.test_checkouts import trees_in
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


def run_with_umask(world: World, umask: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`gitopsd ARGS` started by a shell whose umask is `umask`, in the repository."""
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "gitopsd", *args))
    env = {
        **os.environ,
        "TEST_JOURNAL": str(world.journal_path),
        "TEST_CONTROL": str(world.control_path),
    }
    env.pop("GITOPSD_REPO", None)
    return subprocess.run(
        ["sh", "-c", f"umask {umask:03o} && exec {command}"],
        cwd=world.repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def shared_paths(folder: Path) -> list[str]:
    """Every path under `folder` (itself included) that its group or others may access."""
    found = []
    for root, folders, files in os.walk(folder):
        for path in [Path(root)] + [Path(root, n) for n in folders + files]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                found.append(f"{path.relative_to(folder.parent)} {stat.S_IMODE(mode):04o}")
    return sorted(set(found))


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_apply_and_serve_create_nothing_others_can_read(tmp_path: Path, umask: int) -> None:
    world = World.committed(tmp_path, layered())
    applied = run_with_umask(world, umask, "apply", "--env", "dev")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    served_data = tmp_path / "served"
    state = f"sqlite:///{served_data / 'state.db'}"
    served = run_with_umask(
        world, umask, "serve", "--once", "--data-dir", str(served_data), "--state", state
    )
    assert served.returncode == 0, served.stdout + served.stderr

    for data in (world.repo / ".gitopsd", served_data):
        assert (data / "state.db").exists()
        assert any((data / "checkouts").iterdir())
        assert shared_paths(data) == []


def test_checkouts_stay_read_only_and_scripts_executable_for_their_owner(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    (world.repo / "tool.sh").write_text("#!/bin/sh\n")
    (world.repo / "tool.sh").chmod(0o755)
    subprocess.run(["git", "add", "tool.sh"], cwd=world.repo, check=True)
    subprocess.run(["git", "commit", "-qm", "tool"], cwd=world.repo, check=True)
    applied = run_with_umask(world, 0o022, "apply", "--env", "dev")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    checkout = (world.repo / ".gitopsd" / "checkouts") / trees_in(
        world.repo / ".gitopsd" / "checkouts"
    )[0]
    assert stat.S_IMODE((checkout / "tool.sh").stat().st_mode) == 0o500
    assert stat.S_IMODE((checkout / "driver.py").stat().st_mode) == 0o400
    assert stat.S_IMODE(checkout.stat().st_mode) == 0o500


def test_a_data_folder_left_open_by_an_older_version_is_closed(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    data = world.repo / ".gitopsd"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    done = run_with_umask(world, 0o022, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_a_data_folder_gitopsd_cannot_change_is_left_as_it_is(tmp_path: Path) -> None:
    """A folder on a read-only mount (or owned by another user) is no error to `validate`."""
    world = World.committed(tmp_path, layered())
    data = world.repo / ".gitopsd"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("no user namespaces to mount a read-only folder")
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "gitopsd", "validate"))
    script = f"mount --bind {data} {data} && mount -o remount,bind,ro {data} && exec {command}"
    env = {k: v for k, v in os.environ.items() if k != "GITOPSD_REPO"}
    inside = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        cwd=world.repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert "Traceback" not in inside.stderr


def test_the_repository_root_is_refused_as_a_data_folder(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    world.repo.chmod(0o755)

    done = run_with_umask(world, 0o022, "apply", "--env", "dev", "--data-dir", ".")

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "gitopsd: error: . is inside a git work tree and is not a gitopsd data folder: give"
        " --data-dir a folder of its own (such as .gitopsd), which gitopsd creates with a"
        " .gitignore"
    ]
    assert stat.S_IMODE(world.repo.stat().st_mode) == 0o755
    assert not (world.repo / "state.db").exists()
    assert not (world.repo / "encryption.key").exists()


def test_a_shared_folder_given_as_data_folder_is_not_closed(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "theirs.txt").write_text("someone else's\n")
    shared.chmod(0o755)

    for command in ("apply", "status"):  # the second finds gitopsd's files there: still theirs
        done = run_with_umask(world, 0o022, command, "--env", "dev", "--data-dir", str(shared))
        assert done.returncode == 0, done.stdout + done.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert shared_paths(shared) == ["shared 0755", "shared/theirs.txt 0644"]  # only theirs
    assert (shared / "state.db").exists()
