"""The CLI against the shared store: two "hosts" (two clones of the GitOps repo, each with its
own data folder) and one PostgreSQL database. What one applies, the other sees; the other's
plan has nothing left to do; drift results and the per-environment lease are shared too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitopsd.adapters.postgres_store import PostgresStore
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


def host(world: World, name: str) -> Path:
    """A clone of the GitOps repo, as another machine would have."""
    clone = world.root / name
    subprocess.run(["git", "clone", "-q", str(world.repo), str(clone)], check=True)
    return clone


def gitopsd(world: World, where: Path, state: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TEST_JOURNAL": str(world.journal_path),
        "TEST_CONTROL": str(world.control_path),
        "GITOPSD_STATE": state,  # the flag's variable, as a host's environment would set it
    }
    env.pop("GITOPSD_REPO", None)
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode in (0, 2), done.stdout + done.stderr
    return json.loads(done.stdout)


def test_what_one_host_applies_another_sees_and_does_not_apply_again(
    world: World, postgres_url: str
) -> None:
    first, second = host(world, "host-a"), host(world, "host-b")
    applied = gitopsd(world, first, postgres_url, "apply", "--env", "dev")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    head = world.commit(layered())  # no change to the manifests: the same desired state
    subprocess.run(["git", "pull", "-q"], cwd=second, check=True)

    status = as_json(gitopsd(world, second, postgres_url, "status", "--output", "json"))
    (dev,) = status["environments"]
    assert dev["status"] == "verified"
    assert {c["name"]: c["status"] for c in dev["components"]} == dict.fromkeys(
        ["app", "dns", "k8s", "net"], "applied"
    )
    planned = gitopsd(world, second, postgres_url, "plan", "--env", "dev", "--output", "json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert not any(c["changes"] for c in as_json(planned)["components"])
    again = gitopsd(world, second, postgres_url, "apply", "--env", "dev", "--revision", head)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]  # each applied once, by host-a
    assert not (second / ".gitopsd" / "state.db").exists()  # nothing went to a local store


def test_drift_checked_on_one_host_shows_on_the_other(world: World, postgres_url: str) -> None:
    first, second = host(world, "host-a"), host(world, "host-b")
    assert gitopsd(world, first, postgres_url, "apply", "--env", "dev").returncode == 0
    world.control(plan={"app": 0, "dns": 0, "k8s": 2, "net": 0})  # k8s's check: drifted
    drift = gitopsd(world, second, postgres_url, "drift", "--env", "dev", "--output", "json")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    status = as_json(gitopsd(world, first, postgres_url, "status", "--output", "json"))
    drifts = {c["name"]: c["drift"] for c in status["environments"][0]["components"]}
    assert drifts == {"app": "in_sync", "dns": "in_sync", "k8s": "drifted", "net": "in_sync"}


def test_a_run_on_another_host_holds_the_environment(world: World, postgres_url: str) -> None:
    elsewhere = PostgresStore(postgres_url)
    try:
        now = datetime.now(UTC)
        assert elsewhere.acquire_lease("dev", "host-c:4242:abcd1234", now=now, ttl=300)
        refused = gitopsd(world, world.repo, postgres_url, "apply", "--env", "dev")
    finally:
        elsewhere.close()
    assert refused.returncode == 1
    assert "dev is busy (pid 4242, host host-c)" in refused.stderr
    assert world.calls() == []
