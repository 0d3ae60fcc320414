"""The daemon with a trust file: a commit that is not signed by a trusted signer is never
applied, whether it arrives as a new head or through the API; the environment shows
`blocked` with the reason, the revision is recorded once and counted; the next trusted
commit goes through as usual. Real `gitopsd serve`, real keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess, metric
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment
from tests.signing import Signers, commit_signed, keys, signers, write_trust_file

__all__ = ["keys", "signers"]  # the fixtures, for pytest

SLOW_POLL = ("--poll-interval", "1h")  # a local repository is watched, never polled


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(tmp_path)
    made.control()
    return made


def resized(size: int) -> dict[str, str]:
    return layered(**{"environments/dev.yaml": environment("dev", variables={"size": size})})


def at(served: DaemonProcess, revision: str, status: str) -> bool:
    found = served.environment("dev")
    return bool(found["revision"] == revision and found["status"] == status)


def untrusted_events(served: DaemonProcess) -> list[dict[str, Any]]:
    found = served.get("/api/v1/events", params={"env": "dev", "limit": 100}).json()["events"]
    return [event for event in found if event["kind"] == "revision.untrusted"]


def test_an_untrusted_head_blocks_the_environment_until_a_trusted_commit(
    world: World, daemon: StartDaemon, signers: Signers
) -> None:
    trust = write_trust_file(world.root / "trust.yaml", [signers.alice], required=["dev"])
    first = commit_signed(world, resized(3), key=signers.alice)
    served = daemon(*SLOW_POLL, "--trust-file", str(trust))
    served.wait_for(lambda: at(served, first, "verified"), what="the signed head's apply")
    calls = len(world.journal())

    unsigned = commit_signed(world, resized(5), key=signers.mallory_ssh)
    served.wait_for(lambda: at(served, first, "blocked"), what="the untrusted head to block dev")
    dev = served.environment("dev")
    assert dev["waiting"]["kind"] == "blocked"
    assert (
        f"{unsigned[:12]} is signed by a key the trust file does not list"
        in (dev["waiting"]["reason"])
    )
    asked = served.post(
        "/api/v1/environments/dev/runs", json={"action": "apply", "revision": unsigned}
    )
    assert asked.status_code == 409, asked.text
    assert "the trust file does not list" in asked.json()["error"]
    (recorded,) = untrusted_events(served)
    assert recorded["data"]["revision"] == unsigned
    assert recorded["data"]["seal"] == "unknown_key"
    assert recorded["data"]["key"] == signers.mallory_ssh.fingerprint
    text = served.get("/metrics").text
    assert metric(text, "gitopsd_untrusted_revisions_total", environment="dev") == 1
    shown = {"environment": "dev", "revision": first, "status": "blocked"}
    assert metric(text, "gitopsd_environment_info", **shown) == 1
    assert len(world.journal()) == calls  # nothing ran for it

    trusted = commit_signed(world, resized(7), key=signers.alice)
    served.wait_for(lambda: at(served, trusted, "verified"), what="the trusted commit's apply")
    assert served.environment("dev")["waiting"] is None
    assert len(untrusted_events(served)) == 1
    text = served.get("/metrics").text
    assert metric(text, "gitopsd_untrusted_revisions_total", environment="dev") == 1


def test_the_daemon_refuses_to_start_with_a_trust_file_naming_an_unknown_environment(
    world: World, signers: Signers
) -> None:
    trust = write_trust_file(world.root / "trust.yaml", [signers.alice], required=["prod"])
    commit_signed(world, resized(3), key=signers.alice)
    served = DaemonProcess(world).launch(*SLOW_POLL, "--trust-file", str(trust))
    assert served.process is not None
    assert served.process.wait(60) == 1
    logs = served.logs()
    assert "trust.yaml:" in logs and "environments.prod: no such environment" in logs
    assert "Traceback" not in logs
