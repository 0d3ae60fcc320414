"""`gitopsd plan --save` and `gitopsd apply --plan ID` as a user types them: a saved plan is
applied exactly, once, and refused (exit 1, "stale") when what it was made against moved."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.test_run_commands import as_json, gitopsd
from tests.runtime.test_apply_runs import APP, DNS, NET, layered
from tests.runtime.test_promotion_flow import chain
from tests.runtime.world import World, component, environment


def saved(world: World, env: str = "dev", *args: str) -> str:
    """Save a plan of `env` and return its id, as `--output json` prints it."""
    done = gitopsd(world, "plan", "--env", env, "--save", "--output", "json", *args)
    assert done.returncode in (0, 2), done.stdout + done.stderr
    plan_id = as_json(done)["plan"]
    assert isinstance(plan_id, str)
    return plan_id


def apply_plan(world: World, plan_id: str, env: str = "dev") -> subprocess.CompletedProcess[str]:
    return gitopsd(world, "apply", "--env", env, "--plan", plan_id)


def touched(world: World, *paths: str) -> str:
    """Commit a change to the components at `paths` (their files move, so they must run)."""
    files = layered()
    return world.commit({**files, **{p: files[p] + "\n# touched\n" for p in paths}})


def applied_dev(world: World) -> None:
    done = gitopsd(world, "apply", "--env", "dev")
    assert done.returncode == 0, done.stdout + done.stderr
    world.journal_path.unlink()


def test_a_saved_plan_applies_only_the_components_it_said_change(world: World) -> None:
    applied_dev(world)
    touched(world, NET, DNS)
    world.control(plan={"net": 0})  # net's driver says its new files change nothing
    plan = gitopsd(world, "plan", "--env", "dev", "--save")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "saved plan" in plan.stdout and "~ dns" in plan.stdout and "= net" in plan.stdout
    plan_id = plan.stdout.split("saved plan ")[1].split(";")[0]

    done = apply_plan(world, plan_id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert world.calls("apply") == ["dns"]
    run = as_json(gitopsd(world, "runs", "--env", "dev", "--limit", "1", "--output", "json"))
    # k8s and app wait for net's outputs, so the plan counted them as changing; net's
    # driver said no change, so the plan's run leaves it out
    assert run["runs"][0]["components"] == ["dns", "k8s", "app"]
    history = gitopsd(world, "history", "--env", "dev").stdout
    assert f"saved plan {plan_id}" in history
    assert f"applied plan {plan_id} as run {run['runs'][0]['id']}" in history


def test_a_commit_after_the_plan_makes_it_stale_and_nothing_runs(world: World) -> None:
    applied_dev(world)
    touched(world, DNS)
    plan_id = saved(world)
    touched(world, NET)
    done = apply_plan(world, plan_id)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stale" in done.stderr and "candidate revision of dev moved" in done.stderr
    assert "Traceback" not in done.stderr
    assert world.calls("apply") == []


def test_another_apply_in_between_makes_it_stale(world: World) -> None:
    applied_dev(world)
    touched(world, NET, DNS)
    plan_id = saved(world)
    between = gitopsd(world, "apply", "--env", "dev", "--components", "dns")
    assert between.returncode == 0, between.stdout + between.stderr
    done = apply_plan(world, plan_id)
    assert done.returncode == 1
    assert f"plan {plan_id} is stale: the recorded state of dev changed" in done.stderr
    assert world.calls("apply") == ["dns"]


def test_a_plan_is_applied_once(world: World) -> None:
    plan_id = saved(world)
    first = apply_plan(world, plan_id)
    assert first.returncode == 0, first.stdout + first.stderr
    calls = world.calls("apply")
    assert sorted(calls) == ["app", "dns", "k8s", "net"]
    again = gitopsd(world, "apply", "--env", "dev", "--plan", plan_id, "--output", "json")
    assert again.returncode == 1
    assert "applied already, by run" in as_json(again)["error"]
    assert world.calls("apply") == calls


def test_a_plan_without_changes_is_saved_and_applying_it_changes_nothing(world: World) -> None:
    applied_dev(world)
    done = gitopsd(world, "plan", "--env", "dev", "--save", "--output", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    plan_id = as_json(done)["plan"]
    applied = gitopsd(world, "apply", "--env", "dev", "--plan", plan_id, "--output", "json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert as_json(applied) == {"plan": plan_id, "run": None, "status": "nothing to change"}
    assert world.calls("apply") == []
    again = apply_plan(world, plan_id)
    assert again.returncode == 1 and "applied already, with nothing to change" in again.stderr


def test_unknown_plans_and_plans_of_another_environment_are_refused(world: World) -> None:
    world.commit({**layered(), "environments/qa.yaml": environment("qa", variables={"size": 1})})
    unknown = apply_plan(world, "no-such-plan")
    assert unknown.returncode == 1 and "no saved plan 'no-such-plan'" in unknown.stderr
    qa_plan = saved(world, "qa")
    other = apply_plan(world, qa_plan, env="dev")
    assert other.returncode == 1
    assert f"plan {qa_plan} is a plan of qa, not dev" in other.stderr
    mixed = gitopsd(world, "apply", "--env", "qa", "--plan", qa_plan, "--revision", "HEAD")
    assert mixed.returncode == 1 and "--plan applies the plan's own revision" in mixed.stderr
    assert world.calls("apply") == []


def test_a_failed_plan_is_not_saved(world: World) -> None:
    world.control(fail={"net:plan": -1})
    done = gitopsd(world, "plan", "--env", "dev", "--save", "--output", "json")
    assert done.returncode == 1
    assert as_json(done)["plan"] is None
    text = gitopsd(world, "plan", "--env", "dev", "--save")
    assert text.returncode == 1 and "plan not saved" in text.stdout


def test_a_promoted_plan_follows_the_upstream_not_the_branch_head(tmp_path: Path) -> None:
    files = chain(prod={"approvals": {"required": 0}})
    world = World.committed(tmp_path, files)
    applied_dev(world)
    first = saved(world, "prod")
    world.commit({**files, NET: component("net") + "\n# touched\n"})
    done = apply_plan(world, first, env="prod")  # the head moved; prod follows dev, not the head
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(world.calls("apply")) == ["app", "dns", "k8s", "net"]

    up_to_date = saved(world, "prod")
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0  # dev verifies the commit
    stale = apply_plan(world, up_to_date, env="prod")
    assert stale.returncode == 1
    assert "stale: the candidate revision of prod moved from none to" in stale.stderr
    assert sorted(world.calls("apply")) == ["app", "dns", "k8s", "net", "net"]


def ignoring_state(files: dict[str, str]) -> dict[str, str]:
    """`files` with the data folder git-ignored: a commit with `replace` deletes whatever
    is tracked and not named, and `git add -A` would track the state database."""
    return {**files, ".gitignore": ".gitopsd/\n"}


PRUNING = {"environments/dev.yaml": environment("dev", variables={"size": 3}, prune=True)}


def test_a_saved_plan_destroys_the_orphans_it_planned_where_the_environment_prunes(
    world: World,
) -> None:
    world.commit(ignoring_state(layered(**PRUNING)))
    applied_dev(world)
    files = {k: v for k, v in layered(**PRUNING).items() if k != APP}
    world.commit(ignoring_state({**files, DNS: files[DNS] + "\n# touched\n"}), replace=True)
    world.control(plan={"k8s": 0})
    plan_id = saved(world)

    done = apply_plan(world, plan_id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert world.calls("apply") == ["dns"] and world.calls("destroy") == ["app"]
    status = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))
    assert {c["name"] for c in status["environments"][0]["components"]} == {"net", "dns", "k8s"}


def test_an_apply_naming_an_orphan_prunes_only_it_and_only_where_it_prunes(
    world: World,
) -> None:
    world.commit(ignoring_state(layered()))
    applied_dev(world)
    without_app = {k: v for k, v in layered().items() if k != APP}
    world.commit(ignoring_state(without_app), replace=True)
    refused = gitopsd(world, "apply", "--env", "dev", "--components", "app")
    assert refused.returncode == 1 and "does not prune" in refused.stderr
    assert world.calls("destroy") == []

    world.commit(ignoring_state({**without_app, **PRUNING}), replace=True)
    done = gitopsd(world, "apply", "--env", "dev", "--components", "app")
    assert done.returncode == 0, done.stdout + done.stderr
    assert world.calls("destroy") == ["app"] and world.calls("apply") == []


def test_a_plan_saved_before_its_revision_was_applied_and_rolled_back_is_stale(
    world: World,
) -> None:
    """dev went to the planned revision and was rolled back: its recorded state is what the
    plan was made against again, but the revision the plan brings was found bad in between.
    Applying the plan would bring it back, as if nothing had happened since."""
    applied_dev(world)
    before = gitopsd(world, "status", "--env", "dev", "--output", "json")
    good = as_json(before)["environments"][0]["revision"]
    touched(world, NET)
    plan_id = saved(world)
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0  # the bad revision
    rolled_back = gitopsd(world, "rollback", "--env", "dev", "--to", good)
    assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
    world.journal_path.unlink()

    done = apply_plan(world, plan_id)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"plan {plan_id} is stale" in done.stdout + done.stderr
    assert world.calls("apply") == []
