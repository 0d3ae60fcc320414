"""A driver that prints a sensitive output it did not make (a check comparing it, a plan, a
health probe, a destroy, a gate): the value is redacted wherever the output goes, as the
secret inputs on the same line always were."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.daemon.harness import DaemonProcess
from tests.rest import secrets
from tests.rest.secrets import gitopsd, leaks
from tests.runtime.world import World

REPOSITORY_COPIES = ("checkouts/", "cache/", "mirrors/")  # the user's own variables


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, secrets.files(every_action=True))


def run(world: World, *args: str, codes: tuple[int, ...] = (0,)) -> str:
    """What the command printed (stdout and stderr), once its exit code is checked."""
    done = gitopsd(world, *args, TEST_ECHO="1")
    assert done.returncode in codes, done.stdout + done.stderr
    return done.stdout + done.stderr


def leaks_under(data: Path) -> dict[str, list[str]]:
    found = {path: leaks(content) for path, content in secrets.bytes_under(data).items()}
    return {
        path: hit for path, hit in found.items() if hit and not path.startswith(REPOSITORY_COPIES)
    }


def test_every_driver_output_has_sensitive_outputs_redacted(world: World) -> None:
    shown = run(world, "apply", "--env", "dev")  # apply, health, gate
    shown += run(world, "plan", "--env", "dev", codes=(0, 2))
    markdown, data = world.root / "drift.md", world.root / "drift.json"
    for report, kind in ((markdown, "markdown"), (data, "json")):
        drift = ("drift", "--env", "dev", "--report", str(report), "--format", kind)
        shown += run(world, *drift, codes=(2,))
    shown += run(world, "runs", "--env", "dev", "--output", "json")
    shown += run(world, "status", "--output", "json")

    checked = json.loads(data.read_text())["components"]
    db = next(c for c in checked if c["name"] == "db")
    assert "drift: admin_password *** vs ***" in db["summary"]
    assert "drift: admin_password *** vs ***" in markdown.read_text()
    assert leaks(markdown.read_text() + data.read_text() + shown) == []
    assert leaks_under(world.repo / ".gitopsd") == {}
    shown += run(world, "destroy", "--env", "dev", "--output", "json")
    assert leaks(shown) == []
    assert leaks_under(world.repo / ".gitopsd") == {}


def test_the_stored_drift_summary_has_them_redacted(world: World) -> None:
    run(world, "apply", "--env", "dev")
    run(world, "drift", "--env", "dev", codes=(2,))

    with sqlite3.connect(world.repo / ".gitopsd" / "state.db") as db:
        rows = [str(row) for row in db.execute("SELECT * FROM components")]
    assert any("drift: admin_password *** vs ***" in row for row in rows)
    assert leaks("".join(rows)) == []


def test_the_daemon_drift_reports_and_log_have_them_redacted(world: World) -> None:
    daemon = DaemonProcess(
        world,
        TEST_RECEIVED=str(secrets.received_folder(world)),
        TEST_ECHO="1",
        GITOPSD_ENCRYPTION_KEY="",
    ).start("--poll-interval", "1h")
    try:
        daemon.wait_for(
            lambda: daemon.environment()["status"] == "verified", what="the first apply"
        )
        assert daemon.post("/api/v1/environments/dev/drift").status_code == 202
        reports = daemon.data / "reports" / "dev"
        daemon.wait_for(lambda: len(list(reports.glob("drift-*"))) == 2, what="the reports")
        written = secrets.bytes_under(reports)
        assert any(b"drift: admin_password *** vs ***" in text for text in written.values())
        assert leaks(b"".join(written.values())) == []
        for path in ("/api/v1/environments", "/api/v1/runs?env=dev", "/api/v1/events?env=dev"):
            assert leaks(daemon.get(path).text) == [], path
    finally:
        daemon.stop()
    assert leaks(daemon.logs()) == []
    assert leaks_under(daemon.data) == {}
