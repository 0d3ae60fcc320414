"""`kill -9` of `gitopsd apply` at several points, then another `gitopsd apply` resumes.

The test driver kills its parent (the gitopsd process) with SIGKILL once, at a chosen
point; the next `gitopsd apply` must finish the interrupted run: steps recorded as done are
not repeated, the interrupted step is run again, nothing is skipped.

The driver a killed gitopsd leaves running (an orphan) must be ended by the next command
before that step runs again: no two calls of one component may ever overlap in time, during
an apply, a health check, a gate or a destroy (the test driver's spans say when each call's
work ran).
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, component, environment

CHAIN = {
    "environments/dev.yaml": environment("dev", parallelism=1),
    "components/a/component.yaml": component("a"),
    "components/b/component.yaml": component(
        "b", deps=("a",), inputs={"a": "${{ components.a.outputs.id }}"}
    ),
    "components/c/component.yaml": component(
        "c", deps=("b",), inputs={"b": "${{ components.b.outputs.id }}"}
    ),
}


def runs(world: World) -> list[dict[str, object]]:
    done = world.gitopsd("runs", "--env", "dev", "--output", "json")
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, object]] = json.loads(done.stdout)["runs"]
    return listed


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("victim", ["a", "b", "c"])
def test_a_killed_apply_is_resumed_by_the_next_one(world: World, point: str, victim: str) -> None:
    world.commit(CHAIN)
    world.control(kill_parent={f"{victim}:apply": point})
    killed = world.gitopsd("apply", "--env", "dev")
    assert killed.returncode == -signal.SIGKILL
    interrupted = runs(world)
    assert [r["status"] for r in interrupted] == ["running"]

    resumed = world.gitopsd("apply", "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    applied = world.calls()
    # finished steps are not repeated; the interrupted one ran again only if it had done its work
    expected = ["a", "b", "c"]
    if point == "after":
        expected.insert(expected.index(victim), victim)
    assert applied == expected
    final = runs(world)
    assert final[-1]["id"] == interrupted[0]["id"] and final[-1]["status"] == "succeeded"
    assert [r["status"] for r in final] == ["succeeded", "succeeded"]  # the new run: no changes


@pytest.mark.parametrize(
    ("parallelism", "extra"),
    [(4, 6), (8, 12)],  # from 8 on, a step waits recorded `running` for a driver slot
)
def test_kill_at_random_moments_then_resume_applies_everything_once(
    world: World, parallelism: int, extra: int
) -> None:
    files = layered(**{f"components/x{i}/component.yaml": component(f"x{i}") for i in range(extra)})
    files["environments/dev.yaml"] = environment(
        "dev", variables={"size": 3}, parallelism=parallelism
    )
    world.commit(files)
    world.control(sleep={f"x{i}:apply": 0.15 for i in range(extra)})
    for delay in (0.3, 0.6, 0.9):
        process = world.start_gitopsd("apply", "--env", "dev")
        time.sleep(delay)
        process.kill()
        process.communicate()
    final = world.gitopsd("apply", "--env", "dev")
    assert final.returncode == 0, final.stdout + final.stderr
    status = json.loads(world.gitopsd("status", "--env", "dev", "--output", "json").stdout)
    components = {c["name"]: c["status"] for c in status["environments"][0]["components"]}
    assert components == {
        name: "applied" for name in ["net", "dns", "k8s", "app", *(f"x{i}" for i in range(extra))]
    }
    assert status["environments"][0]["status"] == "verified"
    # each component completed at least once; a repeat only where a kill interrupted it
    completed = world.calls()
    assert set(completed) == set(components)
    # and no step recorded as succeeded was ever run again: one success per component
    successes = [
        step["component"]
        for run in runs(world)
        for step in run["steps"]  # type: ignore[attr-defined]
        if step["action"] == "apply" and step["status"] == "succeeded"
    ]
    assert sorted(successes) == sorted(components)


def steps_of(world: World, run_id: object) -> dict[str, str]:
    (run,) = [r for r in runs(world) if r["id"] == run_id]
    steps: list[dict[str, str]] = run["steps"]  # type: ignore[assignment]
    return {f"{s['component']}:{s['action']}": s["status"] for s in steps}


def test_a_kill_during_a_health_check_runs_it_again_on_resume(world: World) -> None:
    world.commit({**CHAIN, "components/a/component.yaml": component("a", health=True)})
    world.control(kill_parent={"a:health": "before"})
    killed = world.gitopsd("apply", "--env", "dev")
    assert killed.returncode == -signal.SIGKILL
    (interrupted,) = runs(world)

    resumed = world.gitopsd("apply", "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert world.calls("health") == ["a"]  # the killed try never journaled; this one did
    assert world.calls() == ["a", "b", "c"]
    final = runs(world)
    assert final[-1]["id"] == interrupted["id"] and final[-1]["status"] == "succeeded"
    assert steps_of(world, interrupted["id"])["a:health"] == "succeeded"


def test_a_kill_during_a_prune_step_resumes_it(world: World) -> None:
    pruning = {**CHAIN, "environments/dev.yaml": environment("dev", parallelism=1, prune=True)}
    first = world.commit(pruning)
    assert world.gitopsd("apply", "--env", "dev").returncode == 0
    world.commit({k: v for k, v in pruning.items() if "/c/" not in k}, replace=True)
    world.control(kill_parent={"c:destroy": "before"})
    killed = world.gitopsd("apply", "--env", "dev")
    assert killed.returncode == -signal.SIGKILL

    resumed = world.gitopsd("apply", "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    destroyed = [e for e in world.journal() if e["action"] == "destroy"]
    assert [(e["component"], e["revision"]) for e in destroyed] == [("c", first)]
    assert [r["status"] for r in runs(world)] == ["succeeded", "succeeded", "succeeded"]
    status = world.gitopsd("status", "--env", "dev", "--output", "json")
    names = [c["name"] for c in json.loads(status.stdout)["environments"][0]["components"]]
    assert names == ["a", "b"]


def test_a_kill_during_a_gate_runs_it_again_on_resume(world: World) -> None:
    gate = {"name": "smoke", "command": [sys.executable, "driver.py", "gate"]}
    world.commit({**CHAIN, "environments/dev.yaml": environment("dev", gates=[gate])})
    world.control(kill_parent={"smoke:gate": "before"})
    killed = world.gitopsd("apply", "--env", "dev")
    assert killed.returncode == -signal.SIGKILL

    resumed = world.gitopsd("apply", "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # the resumed run's gate, then the new run's (every apply runs the gates)
    assert world.calls("gate") == ["smoke", "smoke"] and world.calls() == ["a", "b", "c"]
    (*_, resumed_run) = runs(world)
    assert resumed_run["status"] == "succeeded"
    assert steps_of(world, resumed_run["id"])["smoke:gate"] == "succeeded"


def spans(world: World) -> dict[str, list[tuple[float, float]]]:
    """When each call's work ran, per component; a call that never ended runs until infinity."""
    path = world.root / "spans.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    running: dict[int, tuple[str, float]] = {}
    ran: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in lines:
        if line["event"] == "start":
            running[line["pid"]] = (line["key"].partition(":")[0], line["at"])
        else:
            name, began = running.pop(line["pid"])
            ran[name].append((began, line["at"]))
    for name, began in running.values():
        ran[name].append((began, math.inf))
    return ran


def assert_no_calls_overlapped(world: World) -> None:
    for name, ran in spans(world).items():
        ran.sort()
        for (_, ended), (began, _) in itertools.pairwise(ran):
            assert ended <= began, f"two calls of {name} ran at once: {ran}"


def events(world: World, kind: str) -> list[dict[str, Any]]:
    done = world.gitopsd("history", "--env", "dev", "--output", "json")
    assert done.returncode == 0, done.stderr
    return [e for e in json.loads(done.stdout)["events"] if e["kind"] == kind]


def with_gate(files: dict[str, str]) -> dict[str, str]:
    gate = {"name": "smoke", "command": [sys.executable, "driver.py", "gate"], "timeout": "30s"}
    manifest = {"apiVersion": "gitopsd.io/v1", "kind": "Environment"}
    manifest |= {"metadata": {"name": "dev"}, "spec": {"parallelism": 1, "gates": [gate]}}
    return files | {"environments/dev.yaml": json.dumps(manifest)}


HEALTHY = CHAIN | {
    "components/b/component.yaml": component(
        "b", deps=("a",), inputs={"a": "${{ components.a.outputs.id }}"}, health=True
    )
}
ORPHANS = {"apply": (CHAIN, "b:apply"), "health": (HEALTHY, "b:health")}
ORPHANS["gate"] = (with_gate(CHAIN), "smoke:gate")


def killed_then_resumed(world: World, command: str, *, orphan: str) -> list[str]:
    """`gitopsd COMMAND --env dev` killed while `orphan`'s driver (a `component:action`) runs
    on, then run again: it must end that driver before its step runs again, so no two calls
    of a component overlap. The components whose drivers it ended."""
    world.control(orphan={orphan: 20})  # 20 s: far longer than the test takes, unless ended
    killed = world.gitopsd(command, "--env", "dev")
    assert killed.returncode == -signal.SIGKILL
    resumed = world.gitopsd(command, "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_no_calls_overlapped(world)
    return [e["data"]["component"] for e in events(world, "driver.orphan_ended")]


@pytest.mark.parametrize("step", sorted(ORPHANS))
def test_the_driver_a_killed_apply_left_is_ended_before_its_step_runs_again(
    world: World, step: str
) -> None:
    files, key = ORPHANS[step]
    world.commit(files)
    assert killed_then_resumed(world, "apply", orphan=key) == [key.partition(":")[0]]
    assert world.calls() == ["a", "b", "c"]
    assert runs(world)[-1]["status"] == "succeeded"


def test_the_driver_a_killed_destroy_left_is_ended_before_it_runs_again(world: World) -> None:
    world.commit(CHAIN)
    assert world.gitopsd("apply", "--env", "dev").returncode == 0
    assert killed_then_resumed(world, "destroy", orphan="b:destroy") == ["b"]
    assert world.calls("destroy") == ["c", "b", "a"]


def test_the_driver_a_killed_prune_left_is_ended_before_it_runs_again(world: World) -> None:
    pruning = {**CHAIN, "environments/dev.yaml": environment("dev", parallelism=1, prune=True)}
    world.commit(pruning)
    assert world.gitopsd("apply", "--env", "dev").returncode == 0
    world.commit({k: v for k, v in pruning.items() if "/c/" not in k}, replace=True)
    assert killed_then_resumed(world, "apply", orphan="c:destroy") == ["c"]
    assert world.calls("destroy") == ["c"]
    status = world.gitopsd("status", "--env", "dev", "--output", "json")
    names = [c["name"] for c in json.loads(status.stdout)["environments"][0]["components"]]
    assert names == ["a", "b"]


def started_calls(world: World, key: str) -> list[int]:
    path = world.root / "spans.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line["pid"] for line in lines if line["key"] == key and line["event"] == "start"]


def apply_until_driver_of(world: World, key: str) -> tuple[subprocess.Popen[str], int]:
    """`gitopsd apply --env dev` started, once the driver call `key` runs: the process
    and that driver's pid."""
    applying = world.start_gitopsd("apply", "--env", "dev")
    deadline = time.monotonic() + 30
    while not started_calls(world, key) and time.monotonic() < deadline:
        time.sleep(0.05)
    (driver,) = started_calls(world, key)
    return applying, driver


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_driver_and_the_next_apply_resumes(
    world: World, signum: signal.Signals
) -> None:
    world.commit(CHAIN)
    world.control(sleep={"b:apply": 20})
    applying, driver = apply_until_driver_of(world, "b:apply")
    applying.send_signal(signum)
    _, stderr = applying.communicate(timeout=30)
    assert applying.returncode == 128 + signum
    assert stderr.strip().splitlines() == [
        f"gitopsd: error: stopped by {signum.name}: the drivers were stopped and the run is "
        "left to resume with the next apply or destroy"
    ]
    assert gone(driver)
    interrupted = runs(world)
    assert [r["status"] for r in interrupted] == ["running"]

    world.control()
    resumed = world.gitopsd("apply", "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_no_calls_overlapped(world)
    assert world.calls() == ["a", "b", "c"]
    assert runs(world)[-1]["id"] == interrupted[0]["id"]
    assert runs(world)[-1]["status"] == "succeeded"


def test_a_stop_signal_ends_gitopsd_waiting_on_a_store_another_process_keeps_locked(
    world: World,
) -> None:
    """Another process holds the state store's write lock: gitopsd says it waits for it, and
    the first Ctrl-C ends the wait and gitopsd (before: the wait went on inside SQLite until
    the lock went, a minute in a trial, and only a second Ctrl-C, killing it, helped).
    Nothing is lost: the next apply runs."""
    world.commit(CHAIN)
    assert world.gitopsd("apply", "--env", "dev").returncode == 0  # the store exists
    world.commit({**CHAIN, "notes.txt": "a change"})
    locker = sqlite3.connect(world.root / "data" / "state.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        applying = world.start_gitopsd("apply", "--env", "dev")
        assert applying.stderr is not None
        said = applying.stderr.readline()  # blocks until gitopsd waits (the test's timeout)
        assert "state.db is locked by another process: waiting for it (up to 130s)" in said
        asked = time.monotonic()
        applying.send_signal(signal.SIGINT)  # an operator pressing Ctrl-C once
        _, stderr = applying.communicate(timeout=20)
        assert time.monotonic() - asked < 5
    finally:
        if applying.poll() is None:
            applying.kill()
            applying.communicate()
        locker.execute("ROLLBACK")
        locker.close()
    assert applying.returncode == 128 + signal.SIGINT
    assert stderr.strip().splitlines() == [
        f"gitopsd: error: stopped by SIGINT: the state database {world.root / 'data' / 'state.db'}"
        " cannot be written: database is locked (not waited for: gitopsd is stopping)"
    ]
    again = world.gitopsd("apply", "--env", "dev")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_stop_signal_stops_a_rollback_as_it_stops_an_apply(world: World) -> None:
    first = world.commit(CHAIN)
    assert world.gitopsd("apply", "--env", "dev").returncode == 0
    changed = component("b", deps=("a",), inputs={"a": "${{ components.a.outputs.id }}", "v": 2})
    world.commit({**CHAIN, "components/b/component.yaml": changed})
    assert world.gitopsd("apply", "--env", "dev").returncode == 0
    world.control(sleep={"b:apply": 20})
    rolling = world.start_gitopsd("rollback", "--env", "dev", "--to", first)
    deadline = time.monotonic() + 30
    while len(started_calls(world, "b:apply")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    driver = started_calls(world, "b:apply")[-1]
    rolling.send_signal(signal.SIGTERM)
    _, stderr = rolling.communicate(timeout=30)
    assert rolling.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.startswith("gitopsd: error: stopped by SIGTERM") and "Traceback" not in stderr
    assert gone(driver)


def test_a_killed_gitopsds_driver_is_ended_without_waiting_for_another_command(
    world: World,
) -> None:
    world.commit(CHAIN)
    world.control(sleep={"b:apply": 20})
    applying, driver = apply_until_driver_of(world, "b:apply")
    applying.kill()
    applying.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while not gone(driver) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(driver)  # SIGTERMed by the helper that outlives gitopsd for this
    assert_no_calls_overlapped(world)

    world.control()
    resumed = world.gitopsd("apply", "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert world.calls() == ["a", "b", "c"]
    assert events(world, "driver.orphan_ended") == []  # nothing was left for it to end


def test_a_run_killed_in_a_health_check_and_cancelled_leaves_its_component_to_apply_again(
    world: World,
) -> None:
    """The health check never passed: the next apply must not find b unchanged and make dev
    verified (it did, with b's check left recorded `running` for good)."""
    with_health = component("b", deps=("a",), inputs={"a": "${{ components.a.outputs.id }}"},
                            health=True)  # fmt: skip
    world.commit({**CHAIN, "components/b/component.yaml": with_health})
    world.control(kill_parent={"b:health": "before"})
    killed = world.gitopsd("apply", "--env", "dev")
    assert killed.returncode == -signal.SIGKILL
    (interrupted,) = runs(world)
    cancel = world.gitopsd("cancel", str(interrupted["id"]))
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr

    again = world.gitopsd("apply", "--env", "dev")
    assert again.returncode == 0, again.stdout + again.stderr
    assert world.calls("apply") == ["a", "b", "b", "c"]  # b again, after its cancelled check
    assert world.calls("health") == ["b"]  # the killed check never wrote its journal line
    shown = world.gitopsd("runs", "--run", str(interrupted["id"]), "--output", "json")
    (run,) = json.loads(shown.stdout)["runs"]
    steps = {(s["component"], s["action"]): s["status"] for s in run["steps"]}
    assert steps[("b", "health")] == "cancelled"
    status = json.loads(world.gitopsd("status", "--env", "dev", "--output", "json").stdout)
    (dev,) = status["environments"]
    assert dev["status"] == "verified"
    assert {c["name"]: c["status"] for c in dev["components"]}["b"] == "applied"


def test_a_plan_after_a_killed_destroy_refuses_naming_it_and_a_killed_plan_is_closed(
    world: World,
) -> None:
    """A plan changes nothing, so it does not resume a half-done destroy: it said `0 to
    change` while b was gone and a still there. It refuses until an apply or destroy has
    resumed the run; an interrupted plan is closed by the next plan."""
    world.commit(CHAIN)
    assert world.gitopsd("apply", "--env", "dev").returncode == 0
    world.control(kill_parent={"b:destroy": "before", "a:plan": "before"})
    assert world.gitopsd("destroy", "--env", "dev").returncode == -signal.SIGKILL
    (destroy,) = [r for r in runs(world) if r["status"] == "running"]
    planned = world.gitopsd("plan", "--env", "dev")
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert f"unfinished destroy run {destroy['id']}" in planned.stderr
    assert "Traceback" not in planned.stderr
    resumed = world.gitopsd("destroy", "--env", "dev")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    said = f"resumed destroy run {destroy['id']} that a stopped gitopsd left: succeeded"
    assert said in resumed.stderr
    assert world.calls("destroy") == ["c", "b", "a"]  # c's done before the kill; b again

    assert world.gitopsd("plan", "--env", "dev").returncode == -signal.SIGKILL
    (killed,) = [r for r in runs(world) if r["status"] == "running"]
    again = world.gitopsd("plan", "--env", "dev")
    assert again.returncode == 2, again.stdout + again.stderr
    shown = world.gitopsd("runs", "--run", str(killed["id"]), "--output", "json")
    (closed,) = json.loads(shown.stdout)["runs"]
    statuses = {s["status"] for s in closed["steps"]}
    assert "cancelled" in statuses and not statuses & {"running", "pending"}
    said = {s["component"]: s["output"] for s in closed["steps"]}
    assert said["a"].startswith("interrupted: its process was killed"), said  # it was running
    plans = [r["status"] for r in runs(world) if r["action"] == "plan"]
    assert plans == ["succeeded", "cancelled"]  # newest first


def test_a_destroy_after_a_killed_apply_takes_what_the_resumed_run_applied_with_its_revision(
    world: World,
) -> None:
    """The destroy resumes the apply first, which applies c at its revision; c is then
    destroyed with that revision's driver, not the head's (it had no state when the destroy
    started, and fell to the head)."""
    first = world.commit(CHAIN)
    world.control(kill_parent={"c:apply": "before"})
    assert world.gitopsd("apply", "--env", "dev").returncode == -signal.SIGKILL
    changed = component("c", deps=("b",), inputs={"b": "${{ components.b.outputs.id }}", "v": 2})
    head = world.commit({**CHAIN, "components/c/component.yaml": changed})
    destroyed = world.gitopsd("destroy", "--env", "dev")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert world.calls("apply") == ["a", "b", "c"]  # the resumed run, at the first commit
    calls = [e for e in world.journal() if e["action"] == "destroy"]
    assert [e["component"] for e in calls] == ["c", "b", "a"]
    assert all(f"/{first}/" in e["cwd"] and head not in e["cwd"] for e in calls)
