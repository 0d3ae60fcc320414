"""The daemon promotes by itself: a commit flows dev -> staging -> prod, prod after two
approvals through the API; metrics and status say where it stands."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from gitopsd.adapters import metrics
from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.runtime.control import Identity
from gitopsd.runtime.promotion import saved_plans
from gitopsd.runtime.service.daemon import Daemon
from tests.daemon.conftest import InProcess, StartDaemon, eventually, status
from tests.daemon.harness import DaemonProcess, metric
from tests.runtime.test_apply_runs import layered
from tests.runtime.test_drift_checks import with_checks
from tests.runtime.test_promotion_flow import environment
from tests.runtime.world import World

PEOPLE = ("alice", "bob", "carol", "Test Author")


def tokens_file(root: Path) -> Path:
    path = root / "tokens.yaml"
    entries = [
        {"name": name, "email": f"{name.split()[0].lower()}@example.com",
         "roles": ["read", "approve"], "token_sha256": hashlib.sha256(name.encode()).hexdigest()}
        for name in PEOPLE
    ]  # fmt: skip
    path.write_text(yaml.safe_dump(entries))
    return path


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}"}


def three_environments() -> dict[str, str]:
    prod = {
        "promotion": {"from": "staging", "auto": True},
        "approvals": {"required": 2, "approvers": list(PEOPLE), "forbid_author": True},
    }
    return layered(
        **{
            "environments/dev.yaml": environment("dev"),
            "environments/staging.yaml": environment(
                "staging", promotion={"from": "dev", "auto": True}
            ),
            "environments/prod.yaml": environment("prod", **prod),
        }
    )


def state(served: DaemonProcess, name: str) -> dict[str, object]:
    return served.environment(name, headers=as_("alice"))


def test_a_commit_flows_down_the_chain_and_prod_waits_for_two_approvals(
    world: World, daemon: StartDaemon
) -> None:
    sha = world.commit(three_environments())
    served = daemon("--poll-interval", "1h", GITOPSD_TOKENS_FILE=str(tokens_file(world.root)))
    served.wait_for(lambda: state(served, "prod")["status"] == "waiting_approval", what="prod")
    assert state(served, "staging")["revision"] == sha
    assert state(served, "prod")["pending_approval"] == {
        "revision": sha,
        "approvals": [],
        "required": 2,
        "asked_by": None,  # the environment's own (auto) promotion
    }
    text = served.get("/metrics").text
    assert metric(text, "gitopsd_pending_approvals", environment="prod") == 1

    url = "/api/v1/environments/prod/approvals"
    author = served.post(url, headers=as_("Test Author"), json={})
    assert author.status_code == 403 and "wrote this revision" in author.json()["error"]
    first = served.post(url, headers=as_("alice"), json={"revision": sha})
    assert first.status_code == 200 and first.json()["missing"] == 1
    again = served.post(url, headers=as_("alice"), json={})
    assert again.status_code == 409
    assert served.post(url, headers=as_("bob"), json={}).status_code == 200

    served.wait_for(lambda: state(served, "prod")["status"] == "verified", what="prod applied")
    assert state(served, "prod")["revision"] == sha
    text = served.get("/metrics").text
    assert metric(text, "gitopsd_promotions_total", environment="staging", result="promoted") == 1
    assert metric(text, "gitopsd_promotions_total", environment="prod", result="promoted") == 1
    assert metric(text, "gitopsd_pending_approvals", environment="prod") == 0
    events = served.get("/api/v1/events", params={"env": "prod"}, headers=as_("alice")).json()
    kinds = [event["kind"] for event in events["events"]]
    assert {"approval.refused", "approval.recorded", "promotion.waiting_approval"} <= set(kinds)
    assert json.dumps(events).count("approval.recorded") == 2
    # the promotion request that applied prod gave its id to its run: a restart after a crash
    # in that run finds the run and does not take the request up again
    runs = served.get("/api/v1/runs", params={"env": "prod"}, headers=as_("alice")).json()
    (promoted,) = [r for r in runs["runs"] if r["trigger"] == "promotion"]
    assert (promoted["status"], promoted["revision"]) == ("succeeded", sha)
    store = SqliteStore(served.data / "state.db")
    try:
        request = store.get_request(promoted["id"])
    finally:
        store.close()
    assert request is not None and request.action == "promote"
    assert request.outcome == f"run {promoted['id']} succeeded"


def with_operator(root: Path) -> Path:
    """The tokens file, with olga, who may operate (promote) but not approve."""
    tokens = tokens_file(root)
    operator = {"name": "olga", "email": "olga@example.com", "roles": ["read", "operate"],
                "token_sha256": hashlib.sha256(b"olga").hexdigest()}  # fmt: skip
    tokens.write_text(tokens.read_text() + yaml.safe_dump([operator]))
    return tokens


def dev_and_prod(prod: dict[str, object], *, size: int = 3) -> dict[str, str]:
    return layered(
        **{
            "environments/dev.yaml": environment("dev", variables={"size": size}),
            "environments/prod.yaml": environment("prod", **prod),
        }
    )


MANUAL_PROD = {"promotion": {"from": "dev", "auto": False}, "approvals": {"required": 2}}


def dev_verified_c_then_d(world: World, daemon: StartDaemon) -> tuple[DaemonProcess, str, str]:
    """A daemon whose dev verified C, then D; prod promotes by hand, after two approvals."""
    older = world.commit(dev_and_prod(MANUAL_PROD))
    served = daemon("--poll-interval", "1h", GITOPSD_TOKENS_FILE=str(with_operator(world.root)))
    served.wait_for(lambda: state(served, "dev")["revision"] == older, what="dev at C")
    newer = world.commit(dev_and_prod(MANUAL_PROD, size=4))
    served.wait_for(lambda: state(served, "dev")["revision"] == newer, what="dev at D")
    served.wait_for(lambda: state(served, "dev")["status"] == "verified", what="dev verified")
    return served, older, newer


def test_approvals_complete_the_revision_a_person_asked_for_not_a_newer_one(
    world: World, daemon: StartDaemon
) -> None:
    """olga asks for C by name while dev has verified a newer D: the approvals that complete
    C's promote C, as olga's request, and never start D, which nobody asked for."""
    served, asked, _ = dev_verified_c_then_d(world, daemon)

    body = {"revision": asked}
    promotion = served.post("/api/v1/environments/prod/promotions", headers=as_("olga"), json=body)
    assert promotion.status_code == 202, promotion.text
    served.wait_for(lambda: state(served, "prod")["pending_approval"] is not None, what="waits")
    pending = state(served, "prod")["pending_approval"]
    assert pending == {"revision": asked, "approvals": [], "required": 2, "asked_by": "olga"}
    url = "/api/v1/environments/prod/approvals"
    for name in ("alice", "bob"):
        assert served.post(url, headers=as_(name), json={}).status_code == 200

    served.wait_for(lambda: state(served, "prod")["status"] == "verified", what="prod applied")
    assert state(served, "prod")["revision"] == asked
    assert state(served, "prod")["pending_approval"] is None
    runs = served.get("/api/v1/runs", params={"env": "prod"}, headers=as_("alice")).json()
    made = [(r["revision"], r["actor"], r["trigger"]) for r in runs["runs"]]
    assert made == [(asked, "olga", "promotion")]


def applies(served: DaemonProcess) -> list[tuple[str, str]]:
    found = served.get("/api/v1/runs", params={"env": "prod"}, headers=as_("alice")).json()
    return [(r["revision"], r["actor"]) for r in reversed(found["runs"]) if r["action"] == "apply"]


def keep_prod_busy(world: World, served: DaemonProcess) -> None:
    """A slow plan holds prod's worker, so that approvals land while it works."""
    world.control(sleep={"net:plan": 3})
    body = {"action": "plan"}
    made = served.post("/api/v1/environments/prod/runs", headers=as_("olga"), json=body)
    assert made.status_code == 202, made.text
    time.sleep(0.5)


def test_an_approval_after_the_last_one_needed_promotes_nothing_again(
    world: World, daemon: StartDaemon
) -> None:
    """carol approves C after alice and bob completed it, before C's run started: C is
    applied once (each approval that left nothing missing used to queue it again)."""
    asked = world.commit(dev_and_prod(MANUAL_PROD))
    served = daemon("--poll-interval", "1h", GITOPSD_TOKENS_FILE=str(with_operator(world.root)))
    served.wait_for(lambda: state(served, "dev")["status"] == "verified", what="dev at C")
    body = {"revision": asked}
    promotion = served.post("/api/v1/environments/prod/promotions", headers=as_("olga"), json=body)
    assert promotion.status_code == 202, promotion.text
    served.wait_for(lambda: state(served, "prod")["pending_approval"] is not None, what="waits")
    keep_prod_busy(world, served)
    url = "/api/v1/environments/prod/approvals"
    for name, given in (("alice", {}), ("bob", {}), ("carol", body)):
        assert served.post(url, headers=as_(name), json=given).status_code == 200
    served.wait_for(lambda: state(served, "prod")["revision"] == asked, what="prod at C")
    time.sleep(4)  # the second promotion of C used to follow
    assert applies(served) == [(asked, "olga")]


def test_a_late_approval_never_takes_the_environment_back(
    world: World, daemon: StartDaemon
) -> None:
    """olga asks for C, alice and bob complete it, olga then asks for D (approved ahead);
    carol's approval of C, given before C's run started, does not run C again after D."""
    served, older, newer = dev_verified_c_then_d(world, daemon)
    url = "/api/v1/environments/prod/approvals"
    for name in ("alice", "bob"):  # D approved ahead of its promotion
        assert served.post(url, headers=as_(name), json={"revision": newer}).status_code == 200
    promotions = "/api/v1/environments/prod/promotions"
    asked = served.post(promotions, headers=as_("olga"), json={"revision": older})
    assert asked.status_code == 202, asked.text
    served.wait_for(lambda: state(served, "prod")["pending_approval"] is not None, what="waits")
    keep_prod_busy(world, served)
    for name in ("alice", "bob"):
        assert served.post(url, headers=as_(name), json={}).status_code == 200
    asked = served.post(promotions, headers=as_("olga"), json={"revision": newer})
    assert asked.status_code == 202, asked.text
    late = served.post(url, headers=as_("carol"), json={"revision": older})
    assert late.status_code == 200, late.text
    served.wait_for(lambda: len(applies(served)) >= 2, what="C, then D")
    time.sleep(6)  # C used to be applied a second time, after D
    assert applies(served) == [(older, "olga"), (newer, "olga")]
    assert state(served, "prod")["revision"] == newer


def test_a_wait_of_the_automatic_promotion_ends_with_auto(
    world: World, daemon: StartDaemon
) -> None:
    """prod's own promotion waited for approvals of C; then `auto` was turned off. Nobody
    asked for C since: approvals of it are taken, and start nothing."""
    auto = {"promotion": {"from": "dev", "auto": True}, "approvals": {"required": 2}}
    sha = world.commit(dev_and_prod(auto))
    served = daemon("--poll-interval", "1h", GITOPSD_TOKENS_FILE=str(with_operator(world.root)))
    served.wait_for(lambda: state(served, "prod")["status"] == "waiting_approval", what="waits")
    manual = world.commit(dev_and_prod({**auto, "promotion": {"from": "dev", "auto": False}}))
    served.wait_for(lambda: state(served, "dev")["revision"] == manual, what="the new head")
    served.wait_for(lambda: state(served, "prod")["pending_approval"] is None, what="not shown")
    assert metric(served.get("/metrics").text, "gitopsd_pending_approvals", environment="prod") == 0

    url = "/api/v1/environments/prod/approvals"
    unasked = served.post(url, headers=as_("alice"), json={})
    assert unasked.status_code == 409, unasked.text
    for name in ("alice", "bob"):
        assert served.post(url, headers=as_(name), json={"revision": sha}).status_code == 200
    time.sleep(3)  # the last approval used to start the automatic promotion all the same
    runs = served.get("/api/v1/runs", params={"env": "prod"}, headers=as_("alice")).json()
    assert runs["runs"] == [] and state(served, "prod")["revision"] is None


def test_approvals_alone_never_start_a_promotion_of_an_environment_without_auto(
    world: World, daemon: StartDaemon
) -> None:
    """Approving and operating are separate roles: without `auto`, approvers complete what a
    person asked for, and an approval with nothing asked for (no revision named) is refused."""
    sha = world.commit(dev_and_prod(MANUAL_PROD))
    served = daemon("--poll-interval", "1h", GITOPSD_TOKENS_FILE=str(with_operator(world.root)))
    served.wait_for(lambda: state(served, "dev")["status"] == "verified", what="dev applied")

    url = "/api/v1/environments/prod/approvals"
    unasked = served.post(url, headers=as_("alice"), json={})
    assert unasked.status_code == 409, unasked.text
    assert "nobody has asked to promote" in unasked.json()["error"]
    for name in ("alice", "bob"):  # approvals of a named revision count once it is asked for
        assert served.post(url, headers=as_(name), json={"revision": sha}).status_code == 200
    time.sleep(3)  # the last approval used to start a promotion at once
    runs = served.get("/api/v1/runs", params={"env": "prod"}, headers=as_("alice")).json()
    assert runs["runs"] == [] and state(served, "prod")["revision"] is None

    asked = served.post("/api/v1/environments/prod/promotions", headers=as_("olga"), json={})
    assert asked.status_code == 202, asked.text
    served.wait_for(lambda: state(served, "prod")["status"] == "verified", what="prod applied")
    assert state(served, "prod")["revision"] == sha


def with_drift_checks(prod: dict[str, Any], size: int = 3) -> dict[str, str]:
    return {
        **with_checks(),
        "environments/dev.yaml": environment("dev", variables={"size": size}),
        "environments/prod.yaml": environment("prod", **prod),
    }


def prod_runs_in(daemon: Any) -> list[tuple[str, str, str]]:
    """prod's runs, oldest first; a request listed before its run is made (a remediation
    chooses no revision) has none yet."""
    found = daemon.runs("prod")["runs"]
    return [((r["revision"] or "-")[:7], r["trigger"], r["status"]) for r in reversed(found)]


def tick(clock: Any, seconds: float = 1) -> None:
    clock.current += timedelta(seconds=seconds)


def test_a_remediation_queued_ahead_of_the_completed_promotion_does_not_drop_it(
    started: InProcess,
) -> None:
    """prod at B; olga asks for C. A drift check of prod is running when alice and bob
    complete C's approvals, so the promotion they queued waits behind it; the check repairs
    prod by re-applying B (an apply made after the promotion's request). The promotion of
    C still runs: a remediation chooses no revision (it used to drop it as superseded)."""
    prod = {"promotion": {"from": "dev", "auto": False},
            "approvals": {"required": 2}, "drift": {"remediate": True}}  # fmt: skip
    files = {**with_drift_checks(prod), **{k: v for k, v in with_checks(CHECK_SLEEP="2").items()
                              if k.startswith("components/")}}  # fmt: skip
    daemon, clock, _jobs, world = started(files)
    eventually(lambda: status(daemon, "dev") == "verified", "dev at B")
    olga, alice, bob = Identity("olga"), Identity("alice"), Identity("bob")
    tick(clock)
    daemon.promote("prod", revision=None, force=False, identity=olga)
    eventually(lambda: status(daemon, "prod") == "waiting_approval", "prod waits for B's")
    tick(clock)
    daemon.approve("prod", revision=None, identity=alice)
    daemon.approve("prod", revision=None, identity=bob)
    eventually(lambda: status(daemon, "prod") == "verified", "prod at B")

    tick(clock)
    c = world.commit({**files, "environments/dev.yaml": environment("dev", variables={"size": 4})})
    daemon.request_fetch("test")
    eventually(lambda: (daemon.workspace.store.get_environment("dev").revision == c
                        and status(daemon, "dev") == "verified"), "dev at C")  # fmt: skip
    tick(clock)
    daemon.promote("prod", revision=c, force=False, identity=olga)
    eventually(lambda: status(daemon, "prod") == "waiting_approval", "prod waits for C's")

    tick(clock)
    (daemon.workspace.state_root / "prod" / "net" / "tampered").write_text("")
    daemon.submit_drift_check("prod", identity=alice)
    time.sleep(0.5)  # the check is running
    tick(clock)
    daemon.approve("prod", revision=None, identity=alice)
    daemon.approve("prod", revision=None, identity=bob)  # completes: C's promotion queued
    tick(clock)  # the remediation starts later than that
    eventually(lambda: any(t == "remediation" for _, t, _ in prod_runs_in(daemon)), "remediation")
    time.sleep(5)
    requests = [(r.trigger, r.status.value, r.outcome) for r in
                daemon.workspace.store.list_requests() if r.environment == "prod"]  # fmt: skip
    assert daemon.workspace.store.get_environment("prod").revision == c, (
        prod_runs_in(daemon),
        requests[-2:],
    )


def test_an_apply_asked_through_the_api_ends_once_its_approvals_promote_it(
    started: InProcess,
) -> None:
    """olga asks for an apply of prod at B (POST .../runs, as the API does); it waits for
    approvals, and the approval that completes them promotes B. Her request ends then: left
    open, the next start of the daemon re-queued it and applied B again, over whatever prod
    had been promoted to since (back from C to B, with nobody asking)."""
    prod = {"promotion": {"from": "dev", "auto": False}, "approvals": {"required": 2}}
    daemon, clock, _jobs, _world = started(with_drift_checks(prod))
    eventually(lambda: status(daemon, "dev") == "verified", "dev at B")
    store = daemon.workspace.store
    b = store.get_environment("dev").revision
    olga = Identity("olga")
    tick(clock)
    asked = daemon.submit_run("prod", action="apply", components=None, revision=b, identity=olga)
    eventually(lambda: status(daemon, "prod") == "waiting_approval", "prod waits for B's")
    pending = store.get_environment("prod").pending_approval
    assert pending is not None and (pending.revision, pending.asked_by) == (b, "olga")
    approved_by_alice_and_bob(daemon, clock)
    record = store.get_request(asked)
    assert record is not None and record.status.value == "done"
    assert record.outcome is not None and record.outcome.startswith("waits for approvals: ")
    assert [(rev, run) for rev, _, run in prod_runs_in(daemon)] == [(b[:7], "succeeded")]


def approved_by_alice_and_bob(daemon: Daemon, clock: Any) -> None:
    """A minute on, alice and bob approve prod's pending revision, which promotes it; no
    request of prod is left open."""
    tick(clock)
    daemon.approve("prod", revision=None, identity=Identity("alice"))
    daemon.approve("prod", revision=None, identity=Identity("bob"))
    eventually(lambda: status(daemon, "prod") == "verified", "prod at B")
    # the run's status is written before its request is closed: on a loaded machine a look
    # in between still found the request open (a request left open stays so: this times out)
    eventually(
        lambda: daemon.workspace.store.list_requests("prod", open_only=True) == [],
        "no request of prod left open",
    )


def restarted(daemon: Daemon, world: World, clock: Any, data: Path) -> Daemon:
    """`daemon` stopped, and another started on its store, as a restart does."""
    daemon.stop(grace=5)
    workspace = world.workspace(SqliteStore(data / "state.db"))
    workspace.clock = clock
    again = Daemon(workspace, jobs=ManualJobs(clock.now), poll_interval=3600,
                   metrics=metrics.recorder)  # fmt: skip
    again.start()
    return again


def test_a_saved_plan_asked_through_the_api_ends_once_its_approvals_promote_it(
    started: InProcess, tmp_path: Path
) -> None:
    """olga asks the daemon to apply a saved plan of prod at B; it waits for approvals, and
    the approval that completes them promotes B, as for a plain apply. Her request ends
    then, saying so: it used to wait until the next start of the daemon took it up again."""
    prod = {"promotion": {"from": "dev", "auto": False}, "approvals": {"required": 2}}
    daemon, clock, _jobs, world = started(with_drift_checks(prod))
    eventually(lambda: status(daemon, "dev") == "verified", "dev at B")
    store = daemon.workspace.store
    b = store.get_environment("dev").revision
    _, _, plan = saved_plans.save(daemon.workspace, "prod", actor="olga")
    assert plan is not None and plan.revision == b and plan.has_work
    olga = Identity("olga")
    tick(clock)
    asked = daemon.submit_plan("prod", plan=plan.id, identity=olga)
    assert asked is not None
    eventually(lambda: status(daemon, "prod") == "waiting_approval", "prod waits for B's")
    pending = store.get_environment("prod").pending_approval
    assert pending is not None and (pending.revision, pending.asked_by) == (b, "olga")
    approved_by_alice_and_bob(daemon, clock)
    ended = store.get_request(asked)
    assert ended is not None and ended.status.value == "done", ended
    assert ended.outcome == (
        f"waits for approvals: {b[:12]} needs 2 more approvals; the approval that completes "
        f"them promotes {b[:12]} as a request of its own (plan {plan.id} is not applied)"
    )
    runs = prod_runs_in(daemon)
    assert runs == [(b[:7], "cli", "succeeded"), (b[:7], "promotion", "succeeded")]  # plan, B

    again = restarted(daemon, world, clock, tmp_path)
    try:
        time.sleep(1)  # a request left open was taken up again at once
        assert again.workspace.store.get_request(asked) == ended
        assert prod_runs_in(again) == runs
    finally:
        again.stop(grace=5)
        again.workspace.store.close()
        again.workspace.source.close()
