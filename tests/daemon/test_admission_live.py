"""Finding 1 of issue 16, against a real `gitopsd serve`: the API takes nothing into a
promoted environment that its upstream did not verify (409 with the reason, nothing applied),
and suspension holds the daemon's own work until resumed."""

from __future__ import annotations

import time

import httpx

from gitopsd.runtime.control import Identity
from tests.daemon.conftest import InProcess, StartDaemon, eventually, status
from tests.daemon.harness import DaemonProcess, metric
from tests.runtime.test_apply_runs import layered
from tests.runtime.test_promotion_flow import environment
from tests.runtime.world import World, component


def three() -> dict[str, str]:
    return layered(
        **{
            "environments/dev.yaml": environment("dev"),
            "environments/staging.yaml": environment("staging", promotion={"from": "dev"}),
            "environments/prod.yaml": environment(
                "prod", promotion={"from": "staging"}, approvals={"required": 0}
            ),
        }
    )


def runs_of(served: DaemonProcess, name: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = served.get("/api/v1/runs", params={"env": name}).json()["runs"]
    return found


def test_the_api_refuses_to_apply_to_prod_what_staging_never_verified(
    world: World, daemon: StartDaemon
) -> None:
    world.control(fail={"app:apply": -1})
    failed = world.commit(three())
    served = daemon("--poll-interval", "1h")
    served.wait_for(lambda: served.environment("dev")["status"] == "failed", what="dev to fail")

    url = "/api/v1/environments/prod/runs"
    nothing = served.post(url, json={"action": "apply"})
    assert nothing.status_code == 409, nothing.text
    assert "verified no revision" in nothing.json()["error"]
    unverified = served.post(url, json={"action": "apply", "revision": failed})
    assert unverified.status_code == 409, unverified.text
    assert unverified.json()["error"] == f"staging never verified {failed[:12]}"

    assert runs_of(served, "prod") == []
    assert {entry["environment"] for entry in world.journal()} == {"dev"}
    assert served.environment("prod")["revision"] is None


def test_a_suspended_environment_takes_no_commit_until_resumed(
    world: World, daemon: StartDaemon
) -> None:
    world.commit(layered())
    served = daemon("--poll-interval", "1s")
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="dev")
    url = "/api/v1/environments/dev/suspension"
    suspended = served.post(url, json={"reason": "incident 42"})
    assert suspended.status_code == 200, suspended.text
    assert served.post(url, json={}).status_code == 409

    head = world.commit(layered(**{"components/net/component.yaml": _changed_net()}))
    served.wait_for(
        lambda: (served.environment("dev").get("waiting") or {}).get("kind") == "suspended",
        what="the commit to be held",
    )
    shown = served.environment("dev")
    assert shown["status"] == "suspended" and shown["revision"] != head
    assert shown["suspension"]["reason"] == "incident 42"
    labels = {"environment": "dev", "revision": shown["revision"], "status": "suspended"}
    assert metric(served.get("/metrics").text, "gitopsd_environment_info", **labels) == 1

    resumed = httpx.delete(
        served.url + url, timeout=10, headers={"Content-Type": "application/json"}
    )
    assert resumed.status_code == 200
    served.wait_for(lambda: served.environment("dev")["revision"] == head, what="the head")
    kinds = [
        e["kind"] for e in served.get("/api/v1/events", params={"env": "dev"}).json()["events"]
    ]
    assert {"environment.suspended", "request.held", "environment.resumed"} <= set(kinds)


def _changed_net() -> str:
    return component("net", inputs={"cidr": "10.9.0.0/16"})


def test_a_held_commit_is_one_request_after_a_restart(world: World, daemon: StartDaemon) -> None:
    """The held request picked up at the start and the head seen again were two requests for
    one commit, both waiting (a queue absorbs the second only while the first is queued)."""
    world.commit(layered())
    served = daemon("--poll-interval", "1s")
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="dev")
    url = "/api/v1/environments/dev/suspension"
    assert served.post(url, json={"reason": "incident 42"}).status_code == 200
    head = world.commit(layered(**{"components/net/component.yaml": _changed_net()}))
    served.wait_for(
        lambda: (served.environment("dev").get("waiting") or {}).get("kind") == "suspended",
        what="the commit to be held",
    )
    assert served.terminate() == 0
    restarted = daemon("--poll-interval", "1h")
    restarted.wait_for(
        lambda: (restarted.environment("dev").get("waiting") or {}).get("kind") == "suspended",
        what="the commit to be held",
    )
    time.sleep(1.0)  # the start's own look at the head has been made by now
    open_requests = [r for r in runs_of(restarted, "dev") if r.get("revision") == head]
    assert [r["status"] for r in open_requests] == ["waiting"]


def test_a_held_commit_whose_revision_a_killed_run_tried_is_not_applied_after_its_resume(
    started: InProcess,
) -> None:
    """dev held the commit's request (suspended); a person's `gitopsd apply` of it was killed
    mid-step and then cancelled. When dev was resumed, the held request was admitted while
    that run was still unfinished, so it resumed it (ending it cancelled) and applied the
    revision again on its own, the operator's cancel undone."""
    daemon, _clock, _jobs, world = started(layered())
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    daemon.suspend("dev", reason="incident", identity=Identity("alice"))
    head = world.commit(layered(**{"components/net/component.yaml": _changed_net()}))
    daemon.workspace.source.fetch()
    eventually(
        lambda: any(r.get("status") == "waiting" for r in daemon.runs("dev")["runs"]),
        "the commit to be held",
    )
    store = f"sqlite:///{world.root / 'state.db'}"
    world.control(kill_parent={"net:apply": "before"})
    assert world.gitopsd("apply", "--env", "dev", state=store).returncode == -9
    (left,) = daemon.workspace.store.unfinished_runs("dev")
    assert world.gitopsd("cancel", left.id, state=store).returncode == 0
    world.control()
    applied = len(world.calls())
    daemon.resume("dev", identity=Identity("alice"))
    eventually(
        lambda: daemon.workspace.store.get_run(left.id).status.value == "cancelled",  # type: ignore[union-attr]
        "the killed run to be resumed and closed",
    )
    time.sleep(1.0)  # the held request has been looked at again by now
    runs = [r for r in daemon.runs("dev")["runs"] if r.get("revision") == head]
    assert [(r["id"], r["status"]) for r in runs] == [(left.id, "cancelled")]
    assert len(world.calls()) == applied
