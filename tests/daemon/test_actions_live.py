"""Promotions, rollbacks and diffs through a real `gitopsd serve`'s API, with real tokens: the
same admission as `gitopsd promote` and `rollback` (409 with the reason, a window overridden
only by `force`, recorded with who forced it), and `gitopsd diff` as JSON."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitopsd.errors import ApproverRefusedError
from gitopsd.runtime.control import Identity
from tests.daemon.conftest import InProcess, StartDaemon, eventually, status
from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.test_promotion_flow import chain
from tests.runtime.world import World, environment

OPS = {"Authorization": "Bearer ops-token"}
READER = {"Authorization": "Bearer reader-token"}
ALWAYS_DENIED = [{"kind": "deny", "schedule": "* * * * *", "duration": "2h", "timezone": "UTC"}]


def tokens_file(root: Path) -> Path:
    """`ops` may do anything, `reader` only read."""
    path = root / "tokens.yaml"
    entries = [
        {"name": name, "email": f"{name}@example.com", "roles": roles,
         "token_sha256": hashlib.sha256(f"{name}-token".encode()).hexdigest()}
        for name, roles in (("ops", ["read", "operate", "approve"]), ("reader", ["read"]))
    ]  # fmt: skip
    path.write_text(yaml.safe_dump(entries))
    return path


def pipeline(size: int = 3) -> dict[str, str]:
    """dev tracks the branch; staging and prod are promoted by hand; prod is always in a
    deny window."""
    sized = {"size": size}
    staging = environment("staging", variables=sized, promotion={"from": "dev", "auto": False})
    prod = environment(
        "prod", variables=sized, promotion={"from": "staging"}, windows=ALWAYS_DENIED
    )
    return layered(
        **{
            "environments/dev.yaml": environment("dev", variables=sized),
            "environments/staging.yaml": staging,
            "environments/prod.yaml": prod,
        }
    )


def serve(world: World, daemon: StartDaemon) -> DaemonProcess:
    served = daemon("--poll-interval", "1h", GITOPSD_TOKENS_FILE=str(tokens_file(world.root)))
    served.wait_for(served.ready, what="the manifests loaded")
    return served


def at(served: DaemonProcess, name: str, revision: str) -> bool:
    found = served.environment(name, headers=READER)
    return bool(found["revision"] == revision and found["status"] == "verified")


def run_status(served: DaemonProcess, run_id: str) -> str | None:
    found = served.get(f"/api/v1/runs/{run_id}", headers=READER)
    return str(found.json()["status"]) if found.status_code == 200 else None


def events(served: DaemonProcess, name: str) -> list[dict[str, Any]]:
    page = served.get("/api/v1/events", params={"env": name}, headers=READER).json()
    found: list[dict[str, Any]] = page["events"]
    return found


def test_promotions_are_admitted_as_the_cli_does_and_force_overrides_only_a_window(
    world: World, daemon: StartDaemon
) -> None:
    never_verified = world.commit(layered(**{"notes.txt": "before the pipeline"}))
    sha = world.commit(pipeline())
    served = serve(world, daemon)
    served.wait_for(lambda: at(served, "dev", sha), what="dev applied")

    refused = served.post(
        "/api/v1/environments/staging/promotions", headers=OPS, json={"revision": never_verified}
    )
    assert refused.status_code == 409
    assert refused.json() == {"error": f"dev never verified {never_verified[:12]}"}
    follows = served.post("/api/v1/environments/dev/promotions", headers=OPS, json={})
    assert follows.status_code == 409 and "follows the branch head" in follows.json()["error"]
    reader = served.post("/api/v1/environments/staging/promotions", headers=READER, json={})
    assert reader.status_code == 403

    queued = served.post("/api/v1/environments/staging/promotions", headers=OPS, json={})
    assert queued.status_code == 202, queued.text
    run_id = queued.json()["run_id"]
    served.wait_for(lambda: at(served, "staging", sha), what="staging promoted")
    run = served.get(f"/api/v1/runs/{run_id}", headers=READER).json()
    assert (run["status"], run["revision"], run["actor"]) == ("succeeded", sha, "ops")

    held = served.post("/api/v1/environments/prod/promotions", headers=OPS, json={})
    assert held.status_code == 202
    held_id = held.json()["run_id"]
    served.wait_for(
        lambda: served.environment("prod", headers=READER)["status"] == "waiting_window",
        what="prod held by its window",
    )
    request = served.get(f"/api/v1/runs/{held_id}", headers=READER).json()
    assert request["status"] == "waiting" and "deny window" in request["reason"]

    forced = served.post("/api/v1/environments/prod/promotions", headers=OPS, json={"force": True})
    assert forced.status_code == 202
    served.wait_for(lambda: at(served, "prod", sha), what="prod promoted through the window")
    (event,) = [e for e in events(served, "prod") if e["kind"] == "promotion.forced"]
    assert event["actor"] == "ops" and "ops forced" in event["message"]


def test_a_rollback_returns_only_to_a_revision_the_environment_verified(
    world: World, daemon: StartDaemon
) -> None:
    never_verified = world.commit(layered(**{"notes.txt": "before the pipeline"}))
    first = world.commit(pipeline())
    served = serve(world, daemon)
    served.wait_for(lambda: at(served, "dev", first), what="dev applied")
    second = world.commit(pipeline(size=5), message="Grow the cluster")
    served.wait_for(lambda: at(served, "dev", second), what="the second commit applied")

    refused = served.post(
        "/api/v1/environments/dev/rollbacks", headers=OPS, json={"revision": never_verified}
    )
    assert refused.status_code == 409
    assert refused.json()["error"].startswith(f"dev never verified {never_verified[:12]}")
    unknown = served.post(
        "/api/v1/environments/dev/rollbacks", headers=OPS, json={"revision": "zz"}
    )
    assert unknown.status_code == 422 and "no commit named 'zz'" in unknown.json()["error"]

    queued = served.post(
        "/api/v1/environments/dev/rollbacks", headers=OPS, json={"revision": first}
    )
    assert queued.status_code == 202, queued.text
    run_id = queued.json()["run_id"]
    served.wait_for(lambda: run_status(served, run_id) == "succeeded", what="dev rolled back")
    run = served.get(f"/api/v1/runs/{run_id}", headers=READER).json()
    assert (run["trigger"], run["actor"], run["revision"]) == ("rollback", "ops", first)
    dev = served.environment("dev", headers=READER)  # its next commit would undo the rollback
    assert (dev["revision"], dev["status"], dev["suspension"]["actor"]) == (
        first,
        "suspended",
        "ops",
    )
    kinds = [(e["kind"], e["actor"]) for e in events(served, "dev")]
    assert ("rollback.requested", "ops") in kinds and ("environment.suspended", "ops") in kinds


def test_the_diff_between_revisions_and_between_environments(
    world: World, daemon: StartDaemon
) -> None:
    first = world.commit(pipeline())
    served = serve(world, daemon)
    served.wait_for(lambda: at(served, "dev", first), what="dev applied")
    assert served.post("/api/v1/environments/staging/promotions", headers=OPS).status_code == 202
    served.wait_for(lambda: at(served, "staging", first), what="staging promoted")
    second = world.commit(pipeline(size=5), message="Grow the cluster")
    served.wait_for(lambda: at(served, "dev", second), what="the second commit applied")

    url = "/api/v1/environments/dev/diff"
    found = served.get(url, params={"from": first, "to": second}, headers=READER)
    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["from"], body["to"], body["differs"], body["commits"]) == (first, second, True, 1)
    assert body["summary"] == [{"name": "k8s", "change": "changed", "fields": ["inputs.size"]}]
    assert '-      "size": 3' in body["diff"] and '+      "size": 5' in body["diff"]
    (commit,) = body["commit_log"]
    assert (commit["sha"], commit["subject"], commit["author"]) == (
        second,
        "Grow the cluster",
        "Test Author",
    )
    same = served.get(url, headers=READER).json()  # dev is at the head: nothing comes next
    assert (same["from"], same["to"], same["differs"]) == (second, second, False)

    lacking = served.get(
        "/api/v1/environments/staging/diff", params={"environment": "dev"}, headers=READER
    ).json()
    assert (lacking["from"], lacking["to"], lacking["differs"]) == (first, second, True)
    assert [c["sha"] for c in lacking["commit_log"]] == [second]

    unknown = served.get(url, params={"from": "nope"}, headers=READER)
    assert unknown.status_code == 404 and "no commit named 'nope'" in unknown.json()["error"]
    empty = served.get(
        "/api/v1/environments/staging/diff", params={"environment": "prod"}, headers=READER
    )
    assert empty.status_code == 409 and "prod has no revision yet" in empty.json()["error"]
    both = served.get(url, params={"environment": "staging", "to": first}, headers=READER)
    assert both.status_code == 422


def test_the_daemon_counts_an_approval_only_with_a_token_where_tokens_are_required(
    started: InProcess,
) -> None:
    prod = {"promotion": {"from": "dev", "auto": True},
            "approvals": {"required": 1, "authenticated": True}}  # fmt: skip
    daemon, _clock, _jobs, _world = started(chain(prod=prod))
    eventually(lambda: status(daemon, "prod") == "waiting_approval", "prod to wait")
    with pytest.raises(ApproverRefusedError, match="takes only authenticated approvals"):
        daemon.approve("prod", revision=None, identity=Identity("local"))  # no tokens file
    approved = daemon.approve(
        "prod", revision=None, identity=Identity("alice", "alice@example.com", token="alice")
    )
    assert (approved["authenticated"], approved["token"], approved["missing"]) == (
        True,
        "alice",
        0,
    )
    eventually(lambda: status(daemon, "prod") == "verified", "prod promoted")
