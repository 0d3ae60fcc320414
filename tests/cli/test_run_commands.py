"""The run commands as a user types them, with the default relative data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import RequestKind, RequestStatus
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, component, environment
from tests.store.contract import request


def gitopsd(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TEST_JOURNAL": str(world.journal_path),
        "TEST_CONTROL": str(world.control_path),
    }
    env.pop("GITOPSD_REPO", None)
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", *args],
        cwd=world.repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def test_plan_apply_plan_with_the_default_data_folder(world: World) -> None:
    planned = gitopsd(world, "plan", "--env", "dev")
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "~ net" in planned.stdout
    applied = gitopsd(world, "apply", "--env", "dev")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (world.repo / ".gitopsd" / "state.db").exists()
    again = gitopsd(world, "plan", "--env", "dev", "--output", "json")
    assert again.returncode == 0
    assert all(c["changes"] is False for c in as_json(again)["components"])


def test_dry_run_changes_nothing(world: World) -> None:
    done = gitopsd(world, "apply", "--env", "dev", "--dry-run", "--output", "json")
    assert done.returncode == 0
    verdicts = {c["name"]: c["verdict"] for c in as_json(done)["components"]}
    assert verdicts == {"net": "run", "dns": "run", "k8s": "waiting", "app": "waiting"}
    assert world.journal() == []


def test_status_has_the_spec_shape(world: World) -> None:
    gitopsd(world, "apply", "--env", "dev")
    report = as_json(gitopsd(world, "status", "--output", "json"))
    (dev,) = report["environments"]
    assert {"name", "revision", "status", "upstream", "pending_approval", "components"} <= set(dev)
    assert dev["status"] == "verified" and dev["pending_approval"] is None
    for entry in dev["components"]:
        assert set(entry) == {"name", "status", "revision", "outputs", "drift"}
    assert {c["name"] for c in dev["components"]} == {"net", "dns", "k8s", "app"}


def test_status_without_the_repository_shows_the_store_and_says_so(world: World) -> None:
    """Status works from the store alone (a host with only the shared store, a broken
    checkout), unlike `plan` or `validate`, which need the manifests and exit 1; but a
    mistyped --repo must not pass for a repository without news."""
    gitopsd(world, "apply", "--env", "dev")
    nowhere = world.root / "nowhere"
    warning = f"warning: cannot read the repository ({nowhere}: no such directory): "
    warning += "the stored state only\n"
    shown = gitopsd(world, "status", "--repo", str(nowhere))
    assert shown.returncode == 0
    dev = shown.stdout.splitlines()[1].split()
    assert (dev[0], dev[2]) == ("dev", "verified")
    assert shown.stderr == warning
    reported = gitopsd(world, "status", "--repo", str(nowhere), "--output", "json")
    assert [e["status"] for e in as_json(reported)["environments"]] == ["verified"]
    assert reported.stderr == warning
    assert gitopsd(world, "status").stderr == ""
    planned = gitopsd(world, "plan", "--env", "dev", "--repo", str(nowhere))
    assert (planned.returncode, planned.stderr) == (
        1,
        f"gitopsd: error: {nowhere}: no such directory\n",
    )


def test_a_usage_error_exits_64_never_2_which_means_changes(world: World) -> None:
    for args in (("apply", "--bogus"), ("apply",), ("frobnicate",), ("plan", "--env")):
        done = gitopsd(world, *args)
        assert done.returncode == 64, (args, done.stderr)
        assert "Error:" in done.stderr
        assert "Traceback" not in done.stderr
    assert gitopsd(world, "--version").returncode == 0


def test_components_naming_none_is_a_usage_error_not_everything(world: World) -> None:
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    for command in ("apply", "destroy", "plan"):
        done = gitopsd(world, command, "--env", "dev", "--components", " , ")
        assert done.returncode == 64, (command, done.stdout, done.stderr)
        assert "names no component" in done.stderr
    twice = gitopsd(world, "destroy", "--env", "dev", "--components", "net,db,net")
    assert twice.returncode == 64 and "names net more than once" in twice.stderr
    assert world.calls("destroy") == []  # nothing was destroyed by the slip
    for args in (("runs", "--limit", "0"), ("history", "--limit", "-5")):
        assert gitopsd(world, *args).returncode == 64, args


def test_status_of_an_unknown_environment_exits_1_naming_it(world: World) -> None:
    gitopsd(world, "apply", "--env", "dev")
    unknown = gitopsd(world, "status", "--env", "nosuch")
    assert unknown.returncode == 1 and "unknown environment 'nosuch'" in unknown.stderr
    assert gitopsd(world, "status", "--env", "dev").returncode == 0


def test_a_failed_apply_exits_1_and_history_tells_why(world: World) -> None:
    world.control(fail={"net:apply": -1})
    done = gitopsd(world, "apply", "--env", "dev")
    assert done.returncode == 1
    assert "net" in done.stdout and "failed" in done.stdout
    events = as_json(gitopsd(world, "history", "--env", "dev", "--output", "json"))["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run.finished" and "component.failed" in kinds


def test_runs_lists_runs_with_steps_and_destroy_empties_the_environment(world: World) -> None:
    gitopsd(world, "apply", "--env", "dev")
    destroyed = gitopsd(world, "destroy", "--env", "dev")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    listed = as_json(gitopsd(world, "runs", "--env", "dev", "--output", "json"))["runs"]
    assert [r["action"] for r in listed] == ["destroy", "apply"]
    assert len(listed[1]["steps"]) == 4
    report = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))
    assert report["environments"][0]["components"] == []


def test_cancel_of_an_unknown_or_finished_run_exits_1(world: World) -> None:
    done = gitopsd(world, "cancel", "nope")
    assert done.returncode == 1 and "no run 'nope'" in done.stderr
    gitopsd(world, "apply", "--env", "dev")
    run_id = as_json(gitopsd(world, "runs", "--output", "json"))["runs"][0]["id"]
    done = gitopsd(world, "cancel", run_id)
    assert done.returncode == 1 and "already succeeded" in done.stderr


def test_a_busy_environment_and_bad_arguments_are_clear_errors(world: World) -> None:
    gitopsd(world, "runs")  # creates the state database
    store = SqliteStore(world.repo / ".gitopsd" / "state.db")
    store.acquire_lease("dev", "otherhost:1:x", now=datetime.now(UTC), ttl=60)
    store.close()
    busy = gitopsd(world, "apply", "--env", "dev")
    assert busy.returncode == 1 and "dev is busy (pid 1, host otherhost)" in busy.stderr
    unknown = gitopsd(world, "plan", "--env", "qa")
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stderr
    bad_state = gitopsd(world, "status", "--state", "mysql://x")
    assert bad_state.returncode == 1 and "unsupported state URL" in bad_state.stderr
    for done in (busy, unknown, bad_state):
        assert "Traceback" not in done.stderr


def test_runs_and_status_show_open_requests_with_their_last_error(world: World) -> None:
    gitopsd(world, "runs")  # creates the state database
    store = SqliteStore(world.repo / ".gitopsd" / "state.db")
    now = datetime.now(UTC)
    at = {"created_at": now, "updated_at": now}
    locked = "the state database is locked"
    retrying = RequestStatus.RETRYING
    store.save_request(
        request("req-retrying", status=retrying, last_error=locked, attempts=1, **at)
    )
    refused = "refused: dev is suspended"
    store.save_request(
        request(
            "req-done", action=RequestKind.PLAN, status=RequestStatus.DONE, outcome=refused, **at
        )
    )
    store.close()
    text = gitopsd(world, "runs", "--env", "dev")
    assert text.returncode == 0
    assert "request req-retrying  apply dev  retrying (commit, gitopsd)" in text.stdout
    assert "last error: the state database is locked" in text.stdout
    assert "req-done" not in text.stdout
    listed = as_json(gitopsd(world, "runs", "--output", "json"))["runs"]
    assert [(r["id"], r["status"]) for r in listed] == [("req-retrying", "retrying")]
    one = as_json(gitopsd(world, "runs", "--run", "req-done", "--output", "json"))["runs"]
    assert [(r["id"], r["status"]) for r in one] == [("req-done", "done")]
    shown = gitopsd(world, "runs", "--run", "req-done").stdout  # what came of it
    assert "  outcome: refused: dev is suspended" in shown.splitlines()
    report = as_json(gitopsd(world, "status", "--output", "json"))
    (shown,) = report["environments"][0]["requests"]
    assert (shown["id"], shown["status"]) == ("req-retrying", "retrying")
    assert shown["last_error"] == "the state database is locked"
    assert "last error: the state database is locked" in gitopsd(world, "status").stdout
    cancel = gitopsd(world, "cancel", "req-retrying")  # it said "no run", though listed
    assert cancel.returncode == 1
    assert cancel.stderr.strip() == (
        "gitopsd: error: req-retrying is a request the daemon holds (retrying), not a run yet:"
        " cancel it through the daemon, `gitopsd cancel req-retrying --server URL`"
    )
    assert "no run 'req-done'" in gitopsd(world, "cancel", "req-done").stderr


def test_an_orphan_is_planned_as_a_destroy_shown_orphaned_and_destroyed_by_name(
    world: World,
) -> None:
    from tests.runtime.test_apply_runs import APP, layered

    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    world.commit({k: v for k, v in layered().items() if k != APP}, replace=True)
    planned = gitopsd(world, "plan", "--env", "dev")
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "- app" in planned.stdout and "orphaned" in planned.stdout
    status = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))
    shown = {c["name"]: c["status"] for c in status["environments"][0]["components"]}
    assert shown == {"app": "orphaned", "k8s": "applied", "net": "applied", "dns": "applied"}
    destroyed = gitopsd(world, "destroy", "--env", "dev", "--components", "app")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert [e["component"] for e in world.journal() if e["action"] == "destroy"] == ["app"]


def test_a_driver_that_cannot_start_in_a_folder_named_in_bytes_not_utf8_says_why(
    world: World,
) -> None:
    """git names folders in bytes: a component in one named in Latin-1 whose driver is
    missing fails with the reason, its folder's odd byte written as `\\xe9`, no traceback."""
    manifest = json.loads(component("cafe"))
    manifest["spec"]["driver"].update(plan=["./no-such-driver.sh"], apply=["./no-such-driver.sh"])
    latin = os.fsdecode(b"components/network/caf\xe9/component.yaml")
    world.commit(layered(**{latin: json.dumps(manifest)}))
    done = gitopsd(world, "apply", "--env", "dev")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    events = as_json(gitopsd(world, "history", "--env", "dev", "--output", "json"))["events"]
    [failed] = [e["message"] for e in events if e["kind"] == "component.failed"]
    assert "cannot start './no-such-driver.sh' in " in failed, failed
    assert "/components/network/caf\\xe9: No such file or directory" in failed, failed


def test_an_unknown_revision_says_what_is_missing_then_where(world: World) -> None:
    """As the API says it: the repository named after the revision, not as a prefix
    (`.: no commit named ...`)."""
    for command in ("plan", "apply"):
        done = gitopsd(world, command, "--env", "dev", "--revision", "nosuchrev")
        assert done.returncode == 1
        assert done.stdout == ""
        error = "gitopsd: error: no commit named 'nosuchrev' in the repository '.'\n"
        assert done.stderr == error
    assert world.journal() == []


def test_plan_may_say_no_changes_while_apply_applies_a_new_component(world: World) -> None:
    """As docs/runs.md says: plan asks the drivers of the components an apply would run, and
    one whose plan driver answers "no change" (exit 0) is not counted; apply runs it all the
    same, because it decides by fingerprints (here: never applied in dev)."""
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    world.commit(layered(**{"components/extra/component.yaml": component("extra")}))
    world.control(plan={"extra": 0})
    world.journal_path.unlink()
    planned = gitopsd(world, "plan", "--env", "dev")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "= extra" in planned.stdout and "new in this environment" in planned.stdout
    assert "0 to change" in planned.stdout
    applied = gitopsd(world, "apply", "--env", "dev")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert world.calls() == ["extra"]


def test_include_nothing_gives_an_environment_without_components(world: World) -> None:
    """`components.include: []` is not "all" (which is the field left out): no component."""
    dev = environment("dev", variables={"size": 3}, components={"include": []})
    world.commit(layered(**{"environments/dev.yaml": dev}))
    assert gitopsd(world, "validate").returncode == 0
    planned = gitopsd(world, "plan", "--env", "dev")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "0 to change, 0 unchanged, 0 failed" in planned.stdout
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    assert world.journal() == []


def test_cancelling_a_run_a_stopped_gitopsd_left_says_when_it_is_closed(tmp_path: Path) -> None:
    """No process walks such a run: `cancel` stops no driver, and said it did ("its drivers
    are being stopped") while `runs` went on showing the run running."""
    world = World.committed(tmp_path, layered())
    world.control(kill_parent={"k8s:apply": "before"})
    assert gitopsd(world, "apply", "--env", "dev").returncode == -9
    (left,) = json.loads(gitopsd(world, "runs", "--output", "json").stdout)["runs"]
    assert left["status"] == "running"

    done = gitopsd(world, "cancel", left["id"])

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"cancel requested for run {left['id']}, which a stopped gitopsd left: no driver of it"
        " runs, and it is closed as cancelled when gitopsd next takes dev (the daemon's start,"
        " or `gitopsd apply --env dev`)"
    )
    gitopsd(world, "apply", "--env", "dev")
    runs = json.loads(gitopsd(world, "runs", "--output", "json").stdout)["runs"]
    assert next(r for r in runs if r["id"] == left["id"])["status"] == "cancelled"
