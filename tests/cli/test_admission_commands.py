"""Admission on the command line (issue 16, finding 7): promote and apply of a revision the
upstream cannot give exit 1 with the reason; a soaking one waits (exit 3); destroy obeys
windows; suspend and resume, shown in status and history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_run_commands import as_json, gitopsd
from tests.runtime.test_promotion_flow import chain, environment
from tests.runtime.world import World

NO_APPROVALS = {"approvals": {"required": 0}}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, chain(prod=NO_APPROVALS))


def test_promote_of_a_revision_dev_never_verified_exits_1_with_the_reason(world: World) -> None:
    never = world.commit(chain(size=8, prod=NO_APPROVALS))
    refused = gitopsd(world, "promote", "--to", "prod", "--revision", never)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"prod: dev never verified {never[:12]}" in refused.stderr
    as_data = gitopsd(world, "promote", "--to", "prod", "--revision", never, "--output", "json")
    assert as_data.returncode == 1 and "never verified" in as_json(as_data)["error"]
    assert world.journal() == []


def test_apply_of_a_soaking_revision_waits_and_of_a_failed_one_is_refused(world: World) -> None:
    soaking = {"promotion": {"from": "dev", "soak": "1h"}, **NO_APPROVALS}
    sha = world.commit(chain(prod=soaking))
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    waits = gitopsd(world, "apply", "--env", "prod", "--revision", sha)
    assert waits.returncode == 3, waits.stdout + waits.stderr
    assert f"{sha[:12]} soaks in dev until" in waits.stdout
    world.control(fail={"k8s:apply": -1})
    failed = world.commit(chain(size=9, prod=soaking))
    assert gitopsd(world, "apply", "--env", "dev").returncode == 1
    refused = gitopsd(world, "apply", "--env", "prod", "--revision", failed)
    assert refused.returncode == 1 and f"dev never verified {failed[:12]}" in refused.stderr
    assert {entry["environment"] for entry in world.journal()} == {"dev"}


def test_destroy_is_held_by_a_deny_window_unless_forced(world: World) -> None:
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    frozen = environment(
        "dev",
        variables={"size": 3},
        windows=[{"kind": "deny", "schedule": "* * * * *", "duration": "1h"}],
    )
    world.commit({**chain(prod=NO_APPROVALS), "environments/dev.yaml": frozen})
    held = gitopsd(world, "destroy", "--env", "dev")
    assert held.returncode == 1 and "deny window" in held.stderr
    assert world.calls("destroy") == []
    forced = gitopsd(world, "destroy", "--env", "dev", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert sorted(world.calls("destroy")) == ["app", "dns", "k8s", "net"]


def test_suspend_and_resume_are_shown_in_status_and_history(world: World) -> None:
    done = gitopsd(world, "suspend", "--env", "dev", "--reason", "incident 42", "--as", "oncall")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dev suspended (incident 42)" in done.stdout
    twice = gitopsd(world, "suspend", "--env", "dev")
    assert twice.returncode == 1 and "dev is suspended already, by oncall" in twice.stderr
    dev = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))["environments"][0]
    assert dev["status"] == "suspended"
    assert (dev["suspension"]["reason"], dev["suspension"]["actor"]) == ("incident 42", "oncall")
    text = gitopsd(world, "status", "--env", "dev").stdout
    assert "dev suspended by oncall since " in text and ": incident 42" in text
    manual = gitopsd(world, "apply", "--env", "dev")
    assert manual.returncode == 0, manual.stdout + manual.stderr  # manual runs still work
    resumed = gitopsd(world, "resume", "--env", "dev", "--as", "alice")
    assert resumed.returncode == 0 and "dev resumed (suspended by oncall)" in resumed.stdout
    dev = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))["environments"][0]
    assert (dev["status"], dev["suspension"]) == ("verified", None)
    history = gitopsd(world, "history", "--env", "dev").stdout
    assert "oncall suspended dev: incident 42" in history and "alice resumed dev" in history
    again = gitopsd(world, "resume", "--env", "dev")
    assert again.returncode == 1 and "dev is not suspended" in again.stderr
    unknown = gitopsd(world, "suspend", "--env", "qa")
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stderr


def test_a_suspension_reason_is_capped_as_the_api_caps_it(world: World) -> None:
    """1,000 characters, on the command line as in POST .../suspension."""
    longest = gitopsd(world, "suspend", "--env", "dev", "--reason", "r" * 1000)
    assert longest.returncode == 0, longest.stderr
    assert gitopsd(world, "resume", "--env", "dev").returncode == 0
    too_long = gitopsd(world, "suspend", "--env", "dev", "--reason", "r" * 100_000)
    assert too_long.returncode == 64 and "Traceback" not in too_long.stderr
    assert "Invalid value for '--reason': 100,000 characters, over 1,000" in too_long.stderr
    lined = gitopsd(world, "suspend", "--env", "dev", "--reason", "a\nb")
    assert lined.returncode == 64 and "control character U+000A" in lined.stderr
    status = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))
    assert status["environments"][0]["status"] != "suspended"
