"""In-process daemon on an injected clock: a commit held by a deny window is applied by itself
when the window ends, and a promotion waits out its soak, without sleeping for real."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.model.state import RequestStatus
from gitopsd.runtime.control import Identity
from gitopsd.runtime.service.daemon import Daemon
from tests.daemon.conftest import FakeClock, InProcess, eventually, status
from tests.runtime.test_promotion_flow import chain, environment
from tests.runtime.world import World


def held_at_lunch(started: InProcess) -> tuple[Daemon, FakeClock, ManualJobs, World]:
    """A daemon whose dev has a deny window from 12:00 to 13:00 UTC, with the first commit
    waiting for it (the injected clock starts inside it)."""
    lunch = [{"kind": "deny", "schedule": "0 12 * * *", "duration": "1h", "timezone": "UTC"}]
    dev = environment("dev", windows=lunch)
    daemon, clock, jobs, world = started({**chain(), "environments/dev.yaml": dev})
    eventually(lambda: status(daemon, "dev") == "waiting_window", "dev to wait for the window")
    return daemon, clock, jobs, world


def test_a_commit_held_by_a_deny_window_is_applied_when_the_window_ends(
    started: InProcess,
) -> None:
    daemon, clock, jobs, world = held_at_lunch(started)
    assert world.journal() == []
    clock.current += timedelta(minutes=29)
    jobs.run_due()
    time.sleep(0.5)
    assert world.journal() == [] and status(daemon, "dev") == "waiting_window"
    clock.current += timedelta(minutes=1)  # 13:00: the window ends
    assert jobs.run_due() >= 1
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]


def test_an_auto_promotion_starts_when_the_soak_ends(
    started: InProcess,
) -> None:
    soaked_prod = {"promotion": {"from": "dev", "auto": True, "soak": "30m"},
                   "approvals": {"required": 0}}  # fmt: skip
    daemon, clock, jobs, world = started(chain(prod=soaked_prod))
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    time.sleep(0.5)
    assert status(daemon, "prod") == "unknown"  # soaking
    clock.current += timedelta(minutes=31)
    jobs.run_due()
    eventually(lambda: status(daemon, "prod") == "verified", "prod to be promoted")
    assert {entry["environment"] for entry in world.journal()} == {"dev", "prod"}


def test_every_request_a_window_holds_is_looked_at_again_when_it_ends(
    started: InProcess,
) -> None:
    daemon, clock, jobs, world = held_at_lunch(started)
    asked = [
        daemon.submit_run("dev", action="apply", components=None, revision=None, identity=who)
        for who in (Identity("alice"), Identity("bob"))
    ]  # the same environment and action as the commit's request, which waits too
    store = daemon.workspace.store

    def waiting() -> list[str]:
        return [r.id for r in store.list_requests("dev", open_only=True)
                if r.status is RequestStatus.WAITING]  # fmt: skip

    eventually(lambda: len(waiting()) == 3, "the commit and both requests to wait")
    clock.current += timedelta(minutes=30)  # 13:00: the window ends
    jobs.run_due()
    eventually(lambda: not store.list_requests("dev", open_only=True), "every request to be done")
    for request_id in asked:
        record = store.get_request(request_id)
        assert record is not None and record.status is RequestStatus.DONE, record
    assert status(daemon, "dev") == "verified"
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]


LUNCH = [{"kind": "deny", "schedule": "0 12 * * *", "duration": "1h", "timezone": "UTC"}]
PROD_AT_LUNCH = {"promotion": {"from": "dev", "auto": False}, "approvals": {"required": 0},
                 "windows": LUNCH}  # fmt: skip


def ask_for(daemon: Daemon, how: str, revision: str, *, force: bool = False) -> str:
    """A promotion of prod to `revision` as olga asks for it through the API: a promotion,
    or an apply naming the revision."""
    olga = Identity("olga")
    if how == "promote":
        return daemon.promote("prod", revision=revision, force=force, identity=olga)
    return daemon.submit_run("prod", action="apply", components=None, revision=revision,
                             identity=olga)  # fmt: skip


def dev_verifies_c(daemon: Daemon, world: World, clock: FakeClock) -> str:
    """A minute on, a commit (C) that dev applies and verifies; its sha."""
    clock.current += timedelta(minutes=1)
    c = world.commit(chain(size=4, prod=PROD_AT_LUNCH))
    daemon.request_fetch("test")
    store = daemon.workspace.store
    eventually(lambda: store.get_environment("dev").revision == c
               and status(daemon, "dev") == "verified", "dev at C")  # fmt: skip
    return c


@pytest.mark.parametrize("how", ["promote", "apply"])
@pytest.mark.parametrize("forced", ["C", "B"])
def test_a_held_promotion_never_takes_the_environment_back_when_the_window_opens(
    started: InProcess, how: str, forced: str
) -> None:
    """olga asks for B while prod's lunch window holds it; meanwhile dev verifies C and
    alice forces C (or B itself) through the window. When the window opens, olga's request
    of B ends, superseded by alice's later run: applied then, it took prod back from C to B
    (or applied B a second time)."""
    files = chain(prod=PROD_AT_LUNCH)
    daemon, clock, jobs, world = started(files)
    store = daemon.workspace.store
    eventually(lambda: status(daemon, "dev") == "verified", "dev at B")
    b = store.get_environment("dev").revision
    clock.current += timedelta(minutes=1)
    asked = ask_for(daemon, how, b)
    eventually(lambda: status(daemon, "prod") == "waiting_window", "prod to wait for lunch")

    c = dev_verifies_c(daemon, world, clock)
    clock.current += timedelta(minutes=1)
    taken = {"B": b, "C": c}[forced]
    alice = daemon.promote("prod", revision=taken, force=True, identity=Identity("alice"))
    eventually(lambda: status(daemon, "prod") == "verified", "prod forced through the window")

    clock.current += timedelta(minutes=30)  # 13:00: the window ends
    jobs.run_due()
    eventually(lambda: not store.list_requests("prod", open_only=True), "olga's request to end")
    record = store.get_request(asked)
    assert record is not None and record.status is RequestStatus.SUPERSEDED, record
    assert record.superseded_by == alice, record
    assert store.get_environment("prod").revision == taken
    applied = [(r["revision"], r["actor"]) for r in reversed(daemon.runs("prod")["runs"])]
    assert applied == [(taken, "alice")]


@pytest.mark.parametrize("how", ["promote", "apply"])
def test_a_held_promotion_asked_before_a_rollback_does_not_undo_it_when_the_window_opens(
    started: InProcess, how: str
) -> None:
    """prod runs B; olga asks for C while prod's lunch window holds it; alice forces C
    through, it goes wrong, and oncall rolls prod back to B. When the window opens, olga's
    request (asked before the rollback) ends superseded by it: run then, it took prod
    straight back to C with nobody asking for it after the rollback."""
    daemon, clock, jobs, world = started(chain(prod=PROD_AT_LUNCH))
    store = daemon.workspace.store
    eventually(lambda: status(daemon, "dev") == "verified", "dev at B")
    b = store.get_environment("dev").revision
    daemon.promote("prod", revision=b, force=True, identity=Identity("alice"))
    eventually(lambda: status(daemon, "prod") == "verified", "prod forced to B")
    c = dev_verifies_c(daemon, world, clock)
    clock.current += timedelta(minutes=1)
    asked = ask_for(daemon, how, c)
    eventually(lambda: status(daemon, "prod") == "waiting_window", "prod to wait for lunch")
    clock.current += timedelta(minutes=1)
    daemon.promote("prod", revision=c, force=True, identity=Identity("alice"))
    eventually(lambda: store.get_environment("prod").revision == c
               and status(daemon, "prod") == "verified", "prod forced to C")  # fmt: skip
    clock.current += timedelta(minutes=1)
    rollback = daemon.rollback("prod", revision=b, identity=Identity("oncall"))
    eventually(lambda: (daemon.run(rollback) or {}).get("status") == "succeeded", "rollback")

    clock.current += timedelta(minutes=30)  # 13:00: the window ends
    jobs.run_due()
    eventually(lambda: not store.list_requests("prod", open_only=True), "olga's request to end")
    time.sleep(0.5)
    assert store.get_environment("prod").revision == b
    record = store.get_request(asked)
    assert record is not None and record.status is RequestStatus.SUPERSEDED, record
    assert record.superseded_by == rollback, record


def test_a_held_apply_never_takes_a_branch_following_environment_back(
    started: InProcess,
) -> None:
    """dev (follows the branch) runs A; alice asks for B, the head then, while lunch holds
    dev; C arrives and bob forces it through on the command line. When the window opens,
    alice's B is superseded by bob's run: it ran after C before (dev went back from C to B,
    then forward to C again)."""
    daemon, clock, jobs, world = held_at_lunch(started)
    store = daemon.workspace.store

    def files(size: int) -> dict[str, str]:
        dev = environment("dev", windows=LUNCH, variables={"size": size})
        return {**chain(size=size), "environments/dev.yaml": dev}

    a = world.commit(files(3))
    daemon.workspace.apply("dev", revision=a, forced=True, actor="bob")
    clock.current += timedelta(minutes=1)
    b = world.commit(files(4))
    asked = daemon.submit_run(
        "dev", action="apply", components=None, revision=b, identity=Identity("alice")
    )
    waiting = RequestStatus.WAITING
    eventually(lambda: getattr(store.get_request(asked), "status", None) is waiting, "B held")
    clock.current += timedelta(minutes=1)
    c = world.commit(files(5))
    daemon.workspace.apply("dev", revision=c, forced=True, actor="bob")
    clock.current += timedelta(minutes=30)  # 13:00: the window ends
    jobs.run_due()
    eventually(lambda: not store.list_requests("dev", open_only=True), "every request to end")
    applied = [r["revision"] for r in reversed(daemon.runs("dev")["runs"])]
    assert b not in applied[applied.index(c) :], applied
    record = store.get_request(asked)
    assert record is not None and record.status is RequestStatus.SUPERSEDED, record


def test_an_auto_promotion_that_failed_is_not_tried_again_on_every_beat(
    started: InProcess,
) -> None:
    """The automatic promotion of a revision that failed in prod was asked again on the next
    beat (every 15 s), applied and rolled back, for ever: automatic work takes a revision
    once; a new revision, or a person, tries again."""
    soaked_prod = {"promotion": {"from": "dev", "auto": True, "soak": "30m"},
                   "approvals": {"required": 0}}  # fmt: skip
    daemon, clock, jobs, world = started(chain(prod=soaked_prod))
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    world.control(fail={"app:apply": -1})
    clock.current += timedelta(minutes=31)
    jobs.run_due()
    eventually(lambda: status(daemon, "prod") == "failed", "prod's promotion to fail")
    tries = world.calls().count("app")
    for _ in range(4):  # a minute of beats
        clock.current += timedelta(seconds=15)
        jobs.run_due()
        time.sleep(0.3)
    assert world.calls().count("app") == tries
    assert [r.status.value for r in daemon.workspace.store.list_runs("prod")] == ["failed"]
