"""Secret references in a real `gitopsd serve`: the API, the metrics and the daemon's log
never hold a value (the driver's output shows `***`), and a secret rotated while the daemon
runs re-applies the component that uses it on the next run asked through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import DaemonProcess
from tests.runtime.world import World
from tests.secrets.stand import component, dumped, stand

PASSWORD = "daemon-pw-4242"
TOKEN = "daemon-tok-8484"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[DaemonProcess]:
    inputs = {"password": "${{ secrets.DB_PASSWORD }}"}
    env = {"API_TOKEN": "${{ secrets.API_TOKEN }}"}
    stand(tmp_path, {"db": component("db", tmp_path / "dumps", inputs=inputs, env=env)})
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "DB_PASSWORD").write_text(PASSWORD + "\n")
    world = World(tmp_path)
    world.control()
    daemon = DaemonProcess(
        world,
        GITOPSD_SECRETS_DIR=str(tmp_path / "secrets"),
        GITOPSD_SECRET_API_TOKEN=TOKEN,
    ).start("--poll-interval", "1h")
    daemon.wait_for(lambda: daemon.environment("dev")["status"] == "verified", what="apply")
    yield daemon
    daemon.stop()


def everything_the_api_shows(served: DaemonProcess) -> str:
    runs = served.get("/api/v1/runs").json()["runs"]
    shown = [served.get(f"/api/v1/runs/{run['id']}").text for run in runs]
    for path in ("/api/v1/runs", "/api/v1/events", "/api/v1/environments", "/metrics"):
        shown.append(served.get(path).text)
    return "\n".join(shown)


def test_the_api_and_the_log_never_hold_a_value(served: DaemonProcess, tmp_path: Path) -> None:
    shown = everything_the_api_shows(served)

    assert dumped(tmp_path, "db", "apply")["inputs"]["password"] == PASSWORD
    assert "password is ***" in shown
    for value in (PASSWORD, TOKEN):
        assert value not in shown
        assert value not in served.logs()


def test_a_rotated_secret_re_applies_on_the_next_run(served: DaemonProcess, tmp_path: Path) -> None:
    (tmp_path / "secrets" / "DB_PASSWORD").write_text("rotated-daemon-pw\n")

    answer = served.post("/api/v1/environments/dev/runs", json={"action": "apply"})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["id"]
    served.wait_for(
        lambda: served.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded",
        what="the second apply",
    )

    steps = served.get(f"/api/v1/runs/{run_id}").json()["steps"]
    assert [(s["component"], s["action"]) for s in steps] == [("db", "apply")]
    assert dumped(tmp_path, "db", "apply")["inputs"]["password"] == "rotated-daemon-pw"
    assert "rotated-daemon-pw" not in json.dumps(steps) + served.logs()
