"""Secrets at rest: sensitive outputs are stored encrypted and secret-named inputs only as a
keyed hash; both reach the drivers that consume them in clear (a secret input rendered
again, when a later call needs it), and are shown as `***` everywhere else. The real binary,
a real command driver, real SQLite and the real daemon's HTTP API."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gitopsd.adapters.postgres_store import PostgresStore
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import kept_hash
from tests.daemon.harness import DaemonProcess
from tests.gitrepos import commit_example
from tests.rest import secrets
from tests.rest.secrets import ADMIN_PASSWORD, DB_PASSWORD, gitopsd, leaks, received
from tests.runtime.world import World

# what the user's own repository holds (their variables): not gitopsd's to hide
REPOSITORY_COPIES = ("checkouts/", "cache/", "mirrors/")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, secrets.files())


def applied(world: World, **env: str) -> None:
    done = gitopsd(world, "apply", "--env", "dev", **env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_data_folder_holds_no_secret_in_clear(world: World) -> None:
    applied(world)

    data = world.repo / ".gitopsd"
    found = {
        path: leaks(content)
        for path, content in secrets.bytes_under(data).items()
        if leaks(content) and not path.startswith(REPOSITORY_COPIES)
    }
    assert found == {}
    store = SqliteStore(data / "state.db")
    db = store.get_component("dev", "db")
    assert db is not None
    assert list(db.outputs["admin_password"]) == ["$encrypted"]  # type: ignore[arg-type]
    assert kept_hash(db.inputs["db_password"]) is not None  # a hash: not even the key opens it
    assert db.outputs["host"] == "db.internal"


def test_drivers_that_consume_sensitive_values_get_them_in_clear(world: World) -> None:
    applied(world)

    assert received(world, "db")["db_password"] == DB_PASSWORD
    assert received(world, "app") == {
        "admin": ADMIN_PASSWORD,
        "url": f"postgres://admin:{ADMIN_PASSWORD}@db.internal/app",
        "host": "db.internal",
    }


def test_calls_on_what_was_applied_get_the_secret_input_rendered_again(tmp_path: Path) -> None:
    """db_password is kept only as a hash: its health probe, a drift check and the destroy
    are given it rendered again from db's manifest, the value db was applied with."""
    world = World.committed(tmp_path, secrets.files(every_action=True))
    applied(world)
    checked = gitopsd(world, "drift", "--env", "dev")
    assert checked.returncode == 2, checked.stdout + checked.stderr  # the driver: "drifted"
    destroyed = gitopsd(world, "destroy", "--env", "dev")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr

    for action in ("health", "check", "destroy"):
        assert received(world, "db", action)["db_password"] == DB_PASSWORD, action
    assert received(world, "app", "check")["admin"] == ADMIN_PASSWORD


def test_a_secret_input_that_is_not_the_one_applied_reaches_no_driver(tmp_path: Path) -> None:
    """With another key the recorded hash cannot match the value rendered again: the check
    fails, saying why and what to do, and db's driver is never called with it."""
    world = World.committed(tmp_path, secrets.files(every_action=True))
    head = subprocess.check_output(["git", "-C", str(world.repo), "rev-parse", "HEAD"], text=True)
    applied(world, GITOPSD_ENCRYPTION_KEY=Fernet.generate_key().decode())
    report = world.root / "drift.json"
    other = Fernet.generate_key().decode()
    checked = gitopsd(
        world, "drift", "--env", "dev", "--report", str(report), "--format", "json",
        GITOPSD_ENCRYPTION_KEY=other,
    )  # fmt: skip
    assert checked.returncode != 0
    db = next(c for c in json.loads(report.read_text())["components"] if c["name"] == "db")
    assert db["drift"] == "error"
    assert db["summary"] == (
        "db: input db_password is kept only as a hash, and rendered again at"
        f" {head[:12]} it is not the value it was applied with: the encryption key is not"
        " the one the state was written with (set GITOPSD_ENCRYPTION_KEY to it, or apply db"
        " again)"
    )
    assert not (secrets.received_folder(world) / "db.check.json").exists()


def test_status_runs_and_history_show_sensitive_values_as_stars(world: World) -> None:
    applied(world)

    status = gitopsd(world, "status", "--output", "json")
    assert status.returncode == 0, status.stderr
    (dev,) = json.loads(status.stdout)["environments"]
    outputs = {c["name"]: c["outputs"] for c in dev["components"]}
    assert outputs["db"] == {"admin_password": "***", "host": "db.internal"}
    runs = gitopsd(world, "runs", "--env", "dev", "--output", "json")
    assert runs.returncode == 0, runs.stderr
    assert "made admin password ***" in runs.stdout
    assert '\\"url\\": \\"***\\"' in runs.stdout  # app's output: the URL that embeds it
    for shown in (status, runs, gitopsd(world, "status"), gitopsd(world, "history")):
        assert leaks(shown.stdout + shown.stderr) == []


def diff_text(world: World) -> str:
    done = gitopsd(world, "diff", "--env", "dev", "--output", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert leaks(done.stdout + done.stderr) == []
    text: str = json.loads(done.stdout)["diff"]
    return text


def test_diff_shows_secret_and_sensitive_inputs_as_stars(world: World) -> None:
    assert '"db_password": "***"' in diff_text(world)  # nothing applied: all of it shown
    applied(world)
    world.commit(secrets.files(extra="${{ vars.size }}"))

    text = diff_text(world)
    assert '"url": "***"' in text
    assert '"admin": "***"' in text
    assert '"host": "db.internal"' in text


def test_a_drift_report_shows_sensitive_inputs_as_stars(world: World) -> None:
    applied(world)
    report = world.root / "drift.json"

    done = gitopsd(world, "drift", "--env", "dev", "--report", str(report), "--format", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "app plan got" in report.read_text()  # check runs the plan command
    assert leaks(report.read_text()) == []
    assert leaks(done.stdout + done.stderr) == []


def test_the_key_file_is_made_private_on_first_use(world: World) -> None:
    applied(world)

    key = world.repo / ".gitopsd" / "encryption.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    Fernet(key.read_bytes().strip())  # a usable key


def test_the_key_from_the_variable_replaces_the_key_file(world: World) -> None:
    key = Fernet.generate_key().decode()
    applied(world, GITOPSD_ENCRYPTION_KEY=key)
    assert not (world.repo / ".gitopsd" / "encryption.key").exists()

    world.commit(secrets.files(extra="1"))
    applied(world, GITOPSD_ENCRYPTION_KEY=key)  # app again: db's outputs decrypted with it
    assert received(world, "app")["admin"] == ADMIN_PASSWORD


def test_a_wrong_key_is_one_clear_error_and_status_still_works(world: World) -> None:
    right, wrong = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    world.commit(secrets.files(db_secret=False))
    applied(world, GITOPSD_ENCRYPTION_KEY=right)
    world.commit(secrets.files(db_secret=False, extra="1"))

    status = gitopsd(world, "status", "--output", "json", GITOPSD_ENCRYPTION_KEY=wrong)
    assert status.returncode == 0, status.stderr
    (dev,) = json.loads(status.stdout)["environments"]
    db = next(c for c in dev["components"] if c["name"] == "db")
    assert db["outputs"]["admin_password"] == "***"
    refused = gitopsd(world, "apply", "--env", "dev", GITOPSD_ENCRYPTION_KEY=wrong)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stdout + refused.stderr
    assert "cannot be decrypted: set GITOPSD_ENCRYPTION_KEY" in refused.stdout + refused.stderr
    assert "extra" not in received(world, "app")  # the driver never ran with a sealed value
    applied(world, GITOPSD_ENCRYPTION_KEY=right)
    assert received(world, "app")["extra"] == "1"
    assert received(world, "app")["admin"] == ADMIN_PASSWORD


def test_a_deleted_key_file_is_not_replaced_while_values_are_sealed(world: World) -> None:
    applied(world)
    key = world.repo / ".gitopsd" / "encryption.key"
    saved = key.read_bytes()
    key.unlink()

    status = gitopsd(world, "status", "--output", "json")
    assert status.returncode == 0, status.stderr
    (dev,) = json.loads(status.stdout)["environments"]
    db = next(c for c in dev["components"] if c["name"] == "db")
    assert db["outputs"]["admin_password"] == "***"
    assert not key.exists()  # status made no new key
    refused = gitopsd(world, "apply", "--env", "dev")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"gitopsd: error: the encryption key is missing: {key.relative_to(world.repo)} does not"
        " exist and the state holds values encrypted or hashed with it; restore the file or set"
        " GITOPSD_ENCRYPTION_KEY to that key"
    ]
    assert not key.exists()
    key.write_bytes(saved)
    world.commit(secrets.files(extra="1"))
    applied(world)
    assert received(world, "app")["admin"] == ADMIN_PASSWORD


def test_a_key_file_others_can_read_is_closed_with_one_warning(world: World) -> None:
    applied(world)
    key = world.repo / ".gitopsd" / "encryption.key"
    key.chmod(0o644)
    world.commit(secrets.files(extra="1"))

    first = gitopsd(world, "apply", "--env", "dev")
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines() == [
        f"gitopsd: warning: {key.relative_to(world.repo)} was readable by other users"
        " (mode 0644): made 0600"
    ]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = gitopsd(world, "status")
    assert again.returncode == 0 and again.stderr == ""


def test_a_malformed_key_is_one_clear_error(world: World) -> None:
    done = gitopsd(world, "apply", "--env", "dev", GITOPSD_ENCRYPTION_KEY="not-a-key")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "gitopsd: error: GITOPSD_ENCRYPTION_KEY is not a valid key: expected 32 url-safe"
        " base64-encoded bytes, as in the key file gitopsd creates"
    ]


def test_the_api_shows_sensitive_values_as_stars(world: World) -> None:
    daemon = DaemonProcess(
        world, TEST_RECEIVED=str(secrets.received_folder(world)), GITOPSD_ENCRYPTION_KEY=""
    ).start("--poll-interval", "1h")
    try:
        daemon.wait_for(
            lambda: daemon.environment()["status"] == "verified", what="the first apply"
        )
        dev = daemon.environment()
        db = next(c for c in dev["components"] if c["name"] == "db")
        assert db["outputs"] == {"admin_password": "***", "host": "db.internal"}
        for path in ("/api/v1/environments", "/api/v1/runs?env=dev", "/api/v1/events?env=dev"):
            answer = daemon.get(path)
            assert answer.status_code == 200, path
            assert leaks(answer.text) == [], path
        assert leaks(b"".join(secrets.bytes_under(daemon.data / "reports").values())) == []
    finally:
        daemon.stop()
    assert received(world, "app")["admin"] == ADMIN_PASSWORD
    assert os.path.exists(daemon.data / "encryption.key")


def test_the_example_keeps_the_clusters_kubeconfig_reference_encrypted(tmp_path: Path) -> None:
    repo = commit_example(tmp_path / "example")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITOPSD_", "FAKEINFRA_"))}
    done = subprocess.run(
        [sys.executable, "-m", "gitopsd", "apply", "--env", "dev"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    assert b"secret://dev/" not in (repo / ".gitopsd" / "state.db").read_bytes()
    status = subprocess.run(
        [sys.executable, "-m", "gitopsd", "status", "--env", "dev", "--output", "json"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (dev,) = json.loads(status.stdout)["environments"]
    clusters = next(c for c in dev["components"] if c["name"] == "clusters")
    assert clusters["outputs"]["kubeconfig_ref"] == "***"
    assert clusters["outputs"]["cluster_endpoint"].startswith("https://")


def test_fingerprints_hash_secret_inputs_with_the_key(tmp_path: Path) -> None:
    """The stored fingerprint depends on the key (a keyed hash of the secret inputs): it
    cannot be used to guess a secret without the key; changes still re-apply, and only them."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, second = (World.committed(tmp_path / n, secrets.files()) for n in ("a", "b"))
    applied(first, GITOPSD_ENCRYPTION_KEY=Fernet.generate_key().decode())
    key = Fernet.generate_key().decode()
    applied(second, GITOPSD_ENCRYPTION_KEY=key)

    def fingerprint(world: World, name: str) -> str:
        state = SqliteStore(world.repo / ".gitopsd" / "state.db").get_component("dev", name)
        assert state is not None
        return state.fingerprint

    assert fingerprint(first, "db") != fingerprint(second, "db")
    assert fingerprint(first, "app") != fingerprint(second, "app")
    unchanged = gitopsd(second, "plan", "--env", "dev", GITOPSD_ENCRYPTION_KEY=key)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    files = secrets.files()
    files["environments/dev.yaml"] = files["environments/dev.yaml"].replace(
        DB_PASSWORD, "pw-db-rotated-2"
    )
    second.commit(files)
    applied(second, GITOPSD_ENCRYPTION_KEY=key)
    assert received(second, "db")["db_password"] == "pw-db-rotated-2"


def test_a_rollback_gives_the_driver_the_previous_secret_in_clear(world: World) -> None:
    applied(world)
    files = secrets.files(extra="2")  # app changes too, and fails
    files["environments/dev.yaml"] = files["environments/dev.yaml"].replace(
        DB_PASSWORD, "pw-db-rotated-2"
    )
    world.commit(files)

    failed = gitopsd(world, "apply", "--env", "dev", TEST_FAIL="app")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    runs = gitopsd(world, "runs", "--env", "dev", "--output", "json").stdout
    assert '"action": "rollback"' in runs
    assert "made admin password ***" in runs
    assert leaks(runs) == []  # the rollback's apply printed the admin password again
    assert received(world, "db")["db_password"] == DB_PASSWORD  # re-applied as it was


def test_a_daemon_on_postgresql_stores_them_encrypted(world: World, postgres_url: str) -> None:
    """The leader writes through a fenced view of the shared store: sealed like the rest."""
    daemon = DaemonProcess(
        world,
        state=postgres_url,
        TEST_RECEIVED=str(secrets.received_folder(world)),
        GITOPSD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    ).start("--poll-interval", "1h")
    try:
        daemon.wait_for(
            lambda: daemon.environment()["status"] == "verified", what="the first apply"
        )
        db = next(c for c in daemon.environment()["components"] if c["name"] == "db")
        assert db["outputs"] == {"admin_password": "***", "host": "db.internal"}
    finally:
        daemon.stop()

    store = PostgresStore(postgres_url)
    try:
        stored = store.get_component("dev", "db")
        assert stored is not None
        assert leaks(stored.model_dump_json()) == []
        assert list(stored.outputs["admin_password"]) == ["$encrypted"]  # type: ignore[arg-type]
    finally:
        store.close()
    assert received(world, "app")["admin"] == ADMIN_PASSWORD
