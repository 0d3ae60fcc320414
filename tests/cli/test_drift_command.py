"""`gitopsd drift` as a user runs it: what is deployed is checked, whatever the branch head."""

from __future__ import annotations

import json

from tests.cli.test_run_commands import gitopsd
from tests.gitrepos import git
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment


def test_drift_checks_what_is_deployed_even_when_the_branch_head_is_broken(world: World) -> None:
    """The head only names the environments; each is checked at the revision it runs, so a
    broken commit on the branch neither stops the check nor gets a checkout exported."""
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    deployed = git(world.repo, "rev-parse", "HEAD")
    world.control(plan={name: 0 for name in ("net", "dns", "k8s", "app")})  # checks: in sync
    head = world.commit({**layered(), "components/net/extra/component.yaml": "kind: [unclosed\n"})
    done = gitopsd(world, "drift", "--env", "dev", "--output", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["environment"] == "dev" and report["revision"] == deployed
    assert {c["drift"] for c in report["components"]} == {"in_sync"}
    assert len(report["components"]) == 4
    checkouts = world.repo / ".gitopsd" / "checkouts"
    assert (checkouts / deployed).is_dir() and not (checkouts / head).exists()


def test_a_remediation_keeps_the_promotion_that_waits_for_approvals(world: World) -> None:
    """A drift repair re-applies the revision prod runs: it brings nothing new in, so the
    promotion of a newer revision that waits for prod's approvals still waits, and the
    approval that completes it lets it through."""
    prod = environment(
        "prod",
        variables={"size": 3},
        promotion={"from": "dev", "auto": False},
        approvals={"required": 1},
    )
    world.commit(layered(**{"environments/prod.yaml": prod}))
    for step in (["apply", "--env", "dev"], ["promote", "--to", "prod"]):
        assert gitopsd(world, *step).returncode in (0, 3)
    assert gitopsd(world, "approve", "--env", "prod", "--as", "alice").returncode == 0
    assert gitopsd(world, "promote", "--to", "prod").returncode == 0
    newer = world.commit(layered(**{"environments/prod.yaml": prod, "components/net/x": "1"}))
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    assert gitopsd(world, "promote", "--to", "prod").returncode == 3  # waits for approval

    world.control(plan={"net": 2})  # net drifted in prod
    repaired = gitopsd(world, "drift", "--env", "prod", "--remediate", "--output", "json")
    assert repaired.returncode == 2, repaired.stdout + repaired.stderr
    assert json.loads(repaired.stdout)["remediation"] is not None

    shown = gitopsd(world, "status", "--env", "prod", "--output", "json")
    (status,) = json.loads(shown.stdout)["environments"]
    assert (status["pending_approval"] or {}).get("revision") == newer, status
    assert status["status"] == "waiting_approval"
    approved = gitopsd(world, "approve", "--env", "prod", "--as", "alice")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    world.control()
    assert gitopsd(world, "promote", "--to", "prod").returncode == 0
    shown = gitopsd(world, "status", "--env", "prod", "--output", "json")
    assert json.loads(shown.stdout)["environments"][0]["revision"] == newer
