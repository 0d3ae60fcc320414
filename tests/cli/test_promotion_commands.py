"""`gitopsd promote` and `gitopsd approve` as a user types them: exit codes 0, 1 and 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_run_commands import as_json, gitopsd
from tests.runtime.test_promotion_flow import chain, environment
from tests.runtime.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, chain())


def test_promote_waits_for_two_approvals_then_applies(world: World) -> None:
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    waiting = gitopsd(world, "promote", "--to", "prod", "--output", "json")
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr
    report = as_json(waiting)
    assert (report["state"], report["required"], report["approvals"]) == ("waiting_approval", 2, [])

    pending = as_json(gitopsd(world, "status", "--env", "prod", "--output", "json"))
    assert pending["environments"][0]["status"] == "waiting_approval"
    assert pending["environments"][0]["pending_approval"] == {
        "revision": report["revision"],
        "approvals": [],
        "required": 2,
        "asked_by": "local",
    }
    text = gitopsd(world, "status", "--env", "prod").stdout
    assert f"{report['revision'][:12]}: 0 of 2 (none yet)" in text
    author = gitopsd(world, "approve", "--env", "prod", "--as", "Test Author")
    assert author.returncode == 1
    assert "approval refused: Test Author wrote this revision" in author.stderr
    for name in ("alice", "bob"):
        approved = gitopsd(world, "approve", "--env", "prod", "--as", name)
        assert approved.returncode == 0, approved.stderr
    assert "complete: the daemon promotes it, or gitopsd promote --to prod" in approved.stdout
    twice = gitopsd(
        world, "approve", "--env", "prod", "--as", "bob", "--revision", report["revision"]
    )
    assert twice.returncode == 1 and "already" in twice.stderr

    promoted = gitopsd(world, "promote", "--to", "prod")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    status = as_json(gitopsd(world, "status", "--env", "prod", "--output", "json"))
    prod = status["environments"][0]
    assert (prod["revision"], prod["status"]) == (report["revision"], "verified")
    history = gitopsd(world, "history", "--env", "prod").stdout
    assert "alice approved" in history and "Test Author wrote this revision" in history


def test_nothing_to_promote_and_an_unknown_environment(world: World) -> None:
    nothing = gitopsd(world, "promote", "--to", "prod")
    assert nothing.returncode == 0 and "verified no revision" in nothing.stdout
    unknown = gitopsd(world, "promote", "--to", "qa")
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stderr
    refused = gitopsd(world, "approve", "--env", "prod", "--as", "alice")
    assert refused.returncode == 1 and "no promotion of prod is waiting" in refused.stderr


def test_apply_waits_for_a_window_and_force_goes_through_on_the_record(world: World) -> None:
    frozen = environment(
        "dev",
        variables={"size": 3},
        windows=[{"kind": "deny", "schedule": "* * * * *", "duration": "1h"}],
    )
    world.commit({**chain(), "environments/dev.yaml": frozen})
    held = gitopsd(world, "apply", "--env", "dev")
    assert held.returncode == 3, held.stdout + held.stderr
    assert "deny window '* * * * *'" in held.stdout
    assert world.journal() == []
    forced = gitopsd(world, "apply", "--env", "dev", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "local forced" in gitopsd(world, "history", "--env", "dev").stdout


def test_apply_to_a_promoted_environment_takes_only_what_its_upstream_verified(
    world: World,
) -> None:
    nothing = gitopsd(world, "apply", "--env", "prod")
    assert nothing.returncode == 0 and "verified no revision" in nothing.stdout
    head = world.commit(chain(size=8))
    refused = gitopsd(world, "apply", "--env", "prod", "--revision", head)
    assert refused.returncode == 1 and f"dev never verified {head[:12]}" in refused.stderr


def test_diff_shows_the_rendered_change_and_the_commits_between(world: World) -> None:
    first = world.commit(chain())
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    same = gitopsd(world, "diff", "--env", "dev")
    assert same.returncode == 0 and "no difference" in same.stdout
    world.commit(chain(size=6), message="dev: six")
    changed = gitopsd(world, "diff", "--env", "dev")
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert f"--- dev@{first[:12]}" in changed.stdout
    assert changed.stdout.startswith(f"dev: {first[:12]} -> ")
    assert "1 changed, 3 unchanged\n  ~ k8s                      inputs.size\n" in changed.stdout
    assert "\n-    size: 3\n+    size: 6\n" in changed.stdout  # YAML, not JSON
    assert "changelog (1 commit, newest first):\n  " in changed.stdout
    assert "dev: six (Test Author)" in changed.stdout
    as_data = as_json(gitopsd(world, "diff", "--env", "dev", "--output", "json"))
    assert '-      "size": 3' in as_data["diff"]  # --output json keeps the JSON form
    assert as_data["summary"] == [{"name": "k8s", "change": "changed", "fields": ["inputs.size"]}]
    assert (as_data["unchanged"], as_data["commits"]) == (3, 1)
    coming = gitopsd(world, "diff", "--env", "prod", "--output", "json")
    assert as_json(coming)["to"] == first  # what dev verified, before any soak or approval
    nothing_yet = as_json(gitopsd(world, "diff", "--env", "prod", "--output", "json"))
    assert nothing_yet["from"] is None and nothing_yet["differs"]  # prod has nothing yet


def test_rollback_returns_only_to_a_revision_the_environment_verified(world: World) -> None:
    first = world.commit(chain())
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    second = world.commit(chain(size=6))
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    never = world.commit(chain(size=7))
    refused = gitopsd(world, "rollback", "--env", "dev", "--to", never)
    assert refused.returncode == 1 and f"dev never verified {never[:12]}" in refused.stderr
    back = gitopsd(world, "rollback", "--env", "dev", "--to", first, "--as", "oncall")
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"dev suspended: rolled back from {second[:12]} to {first[:12]}" in back.stderr
    assert "(gitopsd resume --env dev)" in back.stderr
    dev = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))["environments"][0]
    assert (dev["revision"], dev["previous_revision"]) == (first, second)
    assert (dev["status"], dev["suspension"]["actor"]) == ("suspended", "oncall")
    runs = as_json(gitopsd(world, "runs", "--env", "dev", "--output", "json"))["runs"]
    assert (runs[0]["trigger"], runs[0]["actor"]) == ("rollback", "oncall")


def test_approver_names_are_matched_whatever_the_case(world: World) -> None:
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    assert gitopsd(world, "promote", "--to", "prod").returncode == 3
    outsider = gitopsd(world, "approve", "--env", "prod", "--as", "Mallory")
    assert outsider.returncode == 1 and "not an approver" in outsider.stderr
    for name in ("Alice", "BOB"):
        approved = gitopsd(world, "approve", "--env", "prod", "--as", name)
        assert approved.returncode == 0, approved.stderr
    assert "complete" in approved.stdout


def test_status_shows_the_rules_prod_is_held_to_not_a_loosening_commits(world: World) -> None:
    """A commit that drops prod's `promotion` and narrows its approvers does not govern prod
    before prod applies it: status shows the upstream and the approvals admission uses."""
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    assert gitopsd(world, "promote", "--to", "prod").returncode == 3
    for name in ("alice", "bob"):
        assert gitopsd(world, "approve", "--env", "prod", "--as", name).returncode == 0
    assert gitopsd(world, "promote", "--to", "prod").returncode == 0
    loosened = {**chain(), "environments/prod.yaml": environment("prod")}
    world.commit(loosened, message="prod: no promotion, no approvals")
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    assert gitopsd(world, "promote", "--to", "prod").returncode == 3
    assert gitopsd(world, "approve", "--env", "prod", "--as", "carol").returncode == 0
    shown = as_json(gitopsd(world, "status", "--env", "prod", "--output", "json"))
    prod = shown["environments"][0]
    assert prod["upstream"] == "dev"
    pending = prod["pending_approval"]
    assert (pending["approvals"], pending["required"]) == (["carol"], 2)


def test_a_first_diff_summarises_first_and_caps_the_changelog(world: World) -> None:
    for size in range(4, 16):
        head = world.commit(chain(size=size), message=f"dev: {size}")
    first = gitopsd(world, "diff", "--env", "dev")
    assert first.returncode == 2, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"dev: nothing -> {head[:12]}: 4 added"
    assert sorted(lines[1:5]) == ["  + app", "  + dns", "  + k8s", "  + net"]
    assert "+  layer: clusters" in lines and "+    size: 15" in lines
    assert not any('"layer"' in line for line in lines)  # YAML, not a JSON dump
    log = lines[lines.index("changelog (13 commits, newest first):") + 1 :]
    assert log[0].endswith(" dev: 15 (Test Author)") and len(log) == 11
    assert log[-1] == "  and 3 more"
    listed = as_json(gitopsd(world, "diff", "--env", "dev", "--output", "json"))
    assert (len(listed["changelog"]), listed["commits"]) == (13, 13)
    assert [c["change"] for c in listed["summary"]] == ["added"] * 4


def test_status_does_not_count_the_authors_approval_once_forbid_author_is_set(
    world: World,
) -> None:
    """The revision's author approved it while prod allowed that; a commit then sets
    `forbid_author`. Admission no longer counts the author's approval (2 more needed), and
    status (the API, the dashboard's "Approved by") says the same: it listed the author as
    one of the two approvals and said 1 more was needed."""
    rules = {"required": 2, "approvers": ["alice", "bob", "Test Author"]}
    world.commit(chain(prod={"approvals": rules}))
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    asked = as_json(gitopsd(world, "promote", "--to", "prod", "--output", "json"))
    assert gitopsd(world, "approve", "--env", "prod", "--as", "Test Author").returncode == 0
    world.commit(chain(prod={"approvals": {**rules, "forbid_author": True}}))

    waiting = as_json(gitopsd(world, "promote", "--to", "prod", "--output", "json"))
    assert (waiting["revision"], waiting["approvals"]) == (asked["revision"], [])
    prod = as_json(gitopsd(world, "status", "--env", "prod", "--output", "json"))
    shown = prod["environments"][0]
    assert shown["pending_approval"]["approvals"] == []
    assert shown["waiting"]["reason"].endswith("needs 2 more approvals")
