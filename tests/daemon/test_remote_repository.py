"""A remote repository: mirrored, fetched on a signed webhook and every poll interval, with
fetch failures counted and backed off by the circuit breaker."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess, metric
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment

SECRET = "webhook-secret"


def push(served: DaemonProcess, *, ref: str = "refs/heads/main", secret: str = SECRET) -> int:
    body = json.dumps({"ref": ref, "after": "0" * 40}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    response = served.post(
        "/api/v1/webhooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
    )
    return response.status_code


def fetches(served: DaemonProcess, result: str) -> float:
    return metric(served.get("/metrics").text, "gitopsd_git_fetches_total", result=result) or 0.0


def revision(served: DaemonProcess) -> str | None:
    found = served.environment("dev")
    return found["revision"] if found["status"] == "verified" else None


def change(world: World, size: int) -> str:
    return world.commit(
        layered(**{"environments/dev.yaml": environment("dev", variables={"size": size})})
    )


def test_a_signed_push_webhook_fetches_and_applies_at_once(
    world: World, daemon: StartDaemon
) -> None:
    first = world.commit(layered())
    served = daemon(
        "--poll-interval", "1h", repo=f"file://{world.repo}", GITOPSD_WEBHOOK_SECRET=SECRET
    )
    served.wait_for(lambda: revision(served) == first, what="the first apply")
    second = change(world, 7)
    assert push(served, secret="wrong") == 401
    assert push(served, ref="refs/heads/other") == 202
    assert fetches(served, "success") == 0  # neither of those fetched
    assert revision(served) == first
    assert push(served) == 202
    served.wait_for(lambda: revision(served) == second, what="the pushed commit")
    assert fetches(served, "success") == 1


def test_a_remote_is_polled_and_a_failing_remote_opens_the_circuit(
    world: World, daemon: StartDaemon
) -> None:
    world.commit(layered())
    served = daemon("--poll-interval", "0.2", repo=f"file://{world.repo}")
    served.wait_for(lambda: revision(served) is not None, what="the first apply")
    second = change(world, 8)
    served.wait_for(lambda: revision(served) == second, what="the polled commit")

    hidden = world.repo.with_name("hidden")
    world.repo.rename(hidden)
    served.wait_for(lambda: fetches(served, "circuit_open") >= 1, what="the circuit to open")
    failures = fetches(served, "failure")
    assert failures >= 3  # the breaker's threshold
    assert "circuit open, next fetch in" in served.logs()
    assert served.ready()  # the daemon keeps serving what it has

    hidden.rename(world.repo)
    third = change(world, 9)
    served.wait_for(lambda: revision(served) == third, what="recovery", timeout=60)
    assert "circuit closed" in served.logs()
