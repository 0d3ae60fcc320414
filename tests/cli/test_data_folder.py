"""Where state lives (issue 17, finding 10): the state store follows `--data-dir`, a SQLite
`--state` into a missing folder is refused rather than started empty, and a data folder
gitopsd creates is ignored by git."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.gitrepos import git
from tests.runtime.world import World


def run_ids(world: World, **where: object) -> list[str]:
    done = world.gitopsd("runs", "--env", "dev", "--output", "json", **where)
    assert done.returncode == 0, done.stderr
    return [run["id"] for run in json.loads(done.stdout)["runs"]]


def test_the_state_store_follows_the_data_folder(world: World) -> None:
    elsewhere = world.root / "elsewhere"
    applied = world.gitopsd("apply", "--env", "dev", data=elsewhere)
    assert applied.returncode == 0, applied.stderr
    assert (elsewhere / "state.db").is_file()
    assert not (world.root / ".gitopsd").exists()  # the old default, next to where it ran
    assert len(run_ids(world, data=elsewhere)) == 1
    assert run_ids(world, data=world.root / "other") == []  # another folder, another store


def test_state_given_explicitly_wins_over_the_data_folder(world: World) -> None:
    state = f"sqlite:///{world.root / 'shared.db'}"
    applied = world.gitopsd("apply", "--env", "dev", data=world.root / "one", state=state)
    assert applied.returncode == 0, applied.stderr
    assert not (world.root / "one" / "state.db").exists()
    assert len(run_ids(world, data=world.root / "two", state=state)) == 1


def test_a_state_url_into_a_missing_folder_is_refused_not_started_empty(world: World) -> None:
    missing = world.root / "no-such-folder"
    for command in (("apply", "--env", "dev"), ("runs",)):
        done = world.gitopsd(*command, state=f"sqlite:///{missing / 'state.db'}")
        assert done.returncode == 1
        assert done.stderr.strip() == (
            f"gitopsd: error: the folder {missing} of the state database"
            f" {missing / 'state.db'} does not exist: create it, or correct the state URL"
        )
        assert not missing.exists()
    assert world.calls() == []


def test_the_data_folder_inside_a_checkout_is_never_committed(world: World) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gitopsd", "apply", "--env", "dev"],
        cwd=world.repo,
        env=world.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (world.repo / ".gitopsd" / "state.db").is_file()
    assert (world.repo / ".gitopsd" / ".gitignore").read_text() == "*\n"
    git(world.repo, "add", "-A")
    assert git(world.repo, "status", "--porcelain") == ""


def test_a_data_folder_that_exists_is_left_as_it_is(world: World, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    assert world.gitopsd("apply", "--env", "dev", data=mine).returncode == 0
    assert not (mine / ".gitignore").exists()
