"""What `status` says of a waiting environment (issue 19, item 6): what it waits for and
until when, in text and JSON; an unknown `--env`; when `runs` started and how long they took."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_run_commands import as_json, gitopsd
from tests.gitrepos import git
from tests.runtime.test_promotion_flow import chain, environment
from tests.runtime.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, chain())


def shown(world: World, name: str) -> dict[str, Any]:
    found: dict[str, Any] = as_json(gitopsd(world, "status", "--env", name, "--output", "json"))
    return found["environments"][0]


def test_a_wait_for_approvals_says_who_approved_so_far(world: World) -> None:
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    sha = git(world.repo, "rev-parse", "HEAD")
    assert gitopsd(world, "promote", "--to", "prod").returncode == 3
    assert gitopsd(world, "approve", "--env", "prod", "--as", "alice").returncode == 0
    waiting = shown(world, "prod")["waiting"]
    assert (waiting["kind"], waiting["revision"]) == ("waiting_approval", sha)
    assert (waiting["approvals"], waiting["required"]) == (["alice"], 2)
    text = gitopsd(world, "status").stdout
    assert (
        f"prod waits for approvals: {sha[:12]} needs 1 more approval (1 of 2 so far: alice)" in text
    )


def test_a_soak_names_its_revision_and_its_end(world: World) -> None:
    soaked = {"promotion": {"from": "dev", "soak": "10m"}}
    sha = world.commit(chain(prod=soaked))
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    assert gitopsd(world, "promote", "--to", "prod").returncode == 3  # it soaks in dev
    waiting = shown(world, "prod")["waiting"]
    assert (waiting["kind"], waiting["revision"]) == ("waiting_soak", sha)
    until = waiting["until"]
    assert until is not None
    text = gitopsd(world, "status").stdout
    line = f"prod waits for the soak: {sha[:12]} soaks until {until[:10]} {until[11:19]}Z (10m)"
    assert line in text


def test_a_window_says_when_it_ends(world: World) -> None:
    frozen = environment(
        "dev", windows=[{"kind": "deny", "schedule": "0 0 * * *", "duration": "24h"}]
    )
    world.commit({**chain(), "environments/dev.yaml": frozen})
    assert gitopsd(world, "apply", "--env", "dev").returncode == 3
    waiting = shown(world, "dev")["waiting"]
    assert waiting["kind"] == "waiting_window" and waiting["until"] is not None
    text = gitopsd(world, "status").stdout
    end = f"{waiting['until'][:10]} {waiting['until'][11:16]}Z"
    assert f"dev waits for a change window: deny window '0 0 * * *' (UTC, 24h) until {end}" in text


def test_status_of_an_unknown_environment_names_the_known_ones(world: World) -> None:
    unknown = gitopsd(world, "status", "--env", "nope")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr == (
        "gitopsd: error: unknown environment 'nope' (environments: dev, prod)\n"
    )


def test_runs_shows_when_each_run_started_and_how_long_it_took(world: World) -> None:
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    listed = gitopsd(world, "runs").stdout.splitlines()
    assert listed[0].startswith("run ") and "apply dev" in listed[0]
    timing = re.fullmatch(r"  started (\S+ \S+)Z, took (\d+\.\d)s", listed[1])
    assert timing is not None, listed[1]
    run = as_json(gitopsd(world, "runs", "--output", "json"))["runs"][0]
    assert run["started_at"].replace("T", " ").startswith(timing[1])
