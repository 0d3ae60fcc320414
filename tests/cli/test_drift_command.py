"""`gitopsd drift` as a user runs it: what is deployed is checked, whatever the branch head."""

from __future__ import annotations

import json

from tests.cli.test_run_commands import gitopsd
from tests.gitrepos import git
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


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
