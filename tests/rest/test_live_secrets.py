"""The live output of an apply that makes a sensitive output: the value is known only once the
driver has written its outputs file, so what the driver printed before is not handed to the
run's live readers (`GET /api/v1/runs/{id}/logs`, the dashboard's run page) until the step
ends, redacted as the stored output is."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.daemon.harness import DaemonProcess
from tests.runtime.world import World, environment

MADE = "fresh-Secret-5150"  # what the apply makes: no earlier call could have known it

DRIVER = """\
import json, os, pathlib, sys, time
folder = pathlib.Path(os.environ["TEST_RECEIVED"])
print("made admin password fresh-Secret-5150", flush=True)
(folder / "printed").write_text("")
deadline = time.monotonic() + 60
while not (folder / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
made = {"admin_password": "fresh-Secret-5150"}
pathlib.Path(os.environ["GITOPSD_OUTPUTS"]).write_text(json.dumps(made))
"""


def files() -> dict[str, str]:
    commands = {a: [sys.executable, "../../live_driver.py"] for a in ("plan", "apply")}
    db = {
        "apiVersion": "gitopsd.io/v1",
        "kind": "Component",
        "metadata": {"name": "db", "layer": "network"},
        "spec": {
            "driver": {"type": "command", **commands},
            "sensitive_outputs": ["admin_password"],
        },
    }
    return {
        "environments/dev.yaml": environment("dev"),
        "components/db/component.yaml": json.dumps(db),
        "live_driver.py": DRIVER,
    }


def test_a_running_apply_never_shows_the_sensitive_output_it_makes(tmp_path: Path) -> None:
    world = World.committed(tmp_path, files())
    received = tmp_path / "received"
    received.mkdir()
    daemon = DaemonProcess(world, TEST_RECEIVED=str(received), GITOPSD_ENCRYPTION_KEY="")
    daemon.start("--poll-interval", "1h")
    try:
        daemon.wait_for((received / "printed").exists, what="the apply to print", timeout=60)
        runs = daemon.get("/api/v1/runs?env=dev").json()["runs"]
        path = f"/api/v1/runs/{runs[0]['id']}/logs"
        plain = {"Accept": "text/plain"}
        for _ in range(30):  # the daemon reads what the driver printed within a moment
            shown = daemon.get(path, headers=plain).text
            assert MADE not in shown
            time.sleep(0.1)
        (received / "go").write_text("")
        daemon.wait_for(
            lambda: daemon.environment()["status"] == "verified", what="the apply to end"
        )
        ended = daemon.get(path, headers=plain).text
        assert "made admin password ***" in ended
        assert MADE not in ended
    finally:
        (received / "go").write_text("")
        daemon.stop()
    assert MADE not in daemon.logs()
