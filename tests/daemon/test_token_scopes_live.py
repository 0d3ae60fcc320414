"""Scoped tokens against a real `gitopsd serve` with a real tokens file: a token whose
`environments` leave out dev sees no trace of dev (its environment, runs and events are
unknown to it, lists leave them out) and may do nothing there, while a token without
`environments` reaches it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import yaml

from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

EVERYWHERE = {"Authorization": "Bearer everywhere-token"}
ELSEWHERE = {"Authorization": "Bearer elsewhere-token"}


def entry(name: str, **more: object) -> dict[str, object]:
    token = f"{name}-token".encode()
    return {
        "name": name,
        "email": f"{name}@example.com",
        "roles": ["read", "operate", "approve"],
        "token_sha256": hashlib.sha256(token).hexdigest(),
        **more,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    world = World(tmp_path_factory.mktemp("scopes"))
    world.control()
    world.commit(layered())
    tokens = world.root / "tokens.yaml"
    entries = [entry("everywhere"), entry("elsewhere", environments=["prod"])]
    tokens.write_text(yaml.safe_dump(entries))
    daemon = DaemonProcess(world, GITOPSD_TOKENS_FILE=str(tokens)).start("--poll-interval", "1h")
    daemon.wait_for(
        lambda: daemon.environment("dev", headers=EVERYWHERE)["status"] == "verified",
        what="apply",
    )
    yield daemon
    daemon.stop()


def dev_run(served: DaemonProcess) -> str:
    runs = served.get("/api/v1/runs?env=dev", headers=EVERYWHERE).json()["runs"]
    return str(runs[0]["id"])


def test_lists_leave_out_what_the_token_does_not_reach(served: DaemonProcess) -> None:
    def names(headers: dict[str, str], path: str, key: str) -> list[str]:
        found = served.get(path, headers=headers).json()[key]
        return [item.get("name") or item.get("environment") for item in found]

    assert names(EVERYWHERE, "/api/v1/environments", "environments") == ["dev"]
    assert names(ELSEWHERE, "/api/v1/environments", "environments") == []
    assert "dev" in names(EVERYWHERE, "/api/v1/runs", "runs")
    assert names(ELSEWHERE, "/api/v1/runs", "runs") == []
    assert names(ELSEWHERE, "/api/v1/events", "events") == []


def test_reads_of_an_environment_out_of_reach_are_404(served: DaemonProcess) -> None:
    run = dev_run(served)
    for path in ("/api/v1/environments/dev", "/api/v1/runs?env=dev", f"/api/v1/runs/{run}"):
        answer = served.get(path, headers=ELSEWHERE)
        assert answer.status_code == 404, path
        assert served.get(path, headers=EVERYWHERE).status_code == 200, path


def test_actions_on_an_environment_out_of_reach_are_403(served: DaemonProcess) -> None:
    run = dev_run(served)
    for path, body in (
        ("/api/v1/environments/dev/runs", {"action": "plan"}),
        ("/api/v1/environments/dev/drift", None),
        ("/api/v1/environments/dev/suspension", {"reason": "no"}),
        (f"/api/v1/runs/{run}/cancel", None),
    ):
        answer = served.post(path, headers=ELSEWHERE, json=body)
        assert answer.status_code == 403, (path, answer.text)
        assert "may not act on environment 'dev'" in answer.json()["error"]
    assert served.environment("dev", headers=EVERYWHERE)["status"] != "suspended"
