"""A full or read-only data folder (issue 17, finding 9): every command says so in one line
and exits 1, the daemon reports it on /readyz and keeps the commit until space returns, then
applies it once, by itself."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.errors import StoreError
from tests.daemon.harness import DaemonProcess
from tests.faults.disks import Disk
from tests.runtime.world import World, component, environment

FILES = {"environments/dev.yaml": environment("dev"), "components/a/component.yaml": component("a")}
CAUSES = {"full": "No space left on device", "read-only": "Read-only file system"}
COMMANDS = [
    ("apply", "--env", "dev"),
    ("plan", "--env", "dev"),
    ("destroy", "--env", "dev"),
    ("drift", "--env", "dev"),
]
READING = [("status",), ("runs",), ("history",), ("diff", "--env", "dev")]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, FILES)


def fault(disk: Disk, kind: str) -> None:
    disk.fill() if kind == "full" else disk.read_only()


@pytest.mark.parametrize("kind", sorted(CAUSES))
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_command_on_an_unwritable_data_folder_says_so_in_one_line(
    world: World, disk: Disk, kind: str, command: tuple[str, ...]
) -> None:
    fault(disk, kind)
    done = world.gitopsd(*command, data=disk.folder, state=disk.state, env=disk.env())
    assert done.returncode == 1, done.stdout + done.stderr
    expected = f"gitopsd: error: cannot write to the data folder {disk.folder}: {CAUSES[kind]}"
    assert done.stderr.strip().splitlines()[-1] == expected, disk.method
    assert "Traceback" not in done.stderr
    assert world.calls() == []


@pytest.mark.parametrize("kind", sorted(CAUSES))
@pytest.mark.parametrize("command", READING, ids=lambda c: c[0])
def test_a_command_that_only_reads_works_on_an_unwritable_data_folder(
    world: World, disk: Disk, kind: str, command: tuple[str, ...]
) -> None:
    """During the incident the operator still sees what was applied and what ran."""
    where = {"data": disk.folder, "state": disk.state, "env": disk.env()}
    applied = world.gitopsd("apply", "--env", "dev", **where)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    fault(disk, kind)

    done = world.gitopsd(*command, "--output", "json", **where)

    assert done.returncode == 0, (disk.method, done.stdout + done.stderr)
    assert done.stderr == ""
    assert json.loads(done.stdout)


@pytest.mark.parametrize("kind", sorted(CAUSES))
def test_an_apply_refused_for_a_full_disk_applies_once_space_returns(
    world: World, disk: Disk, kind: str
) -> None:
    fault(disk, kind)
    refused = world.gitopsd(
        "apply", "--env", "dev", data=disk.folder, state=disk.state, env=disk.env()
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    disk.heal()
    applied = world.gitopsd(
        "apply", "--env", "dev", data=disk.folder, state=disk.state, env=disk.env()
    )
    assert applied.returncode == 0, applied.stderr
    assert world.calls() == ["a"]


def readiness(daemon: DaemonProcess) -> tuple[int, str]:
    answer = daemon.get("/readyz")
    return answer.status_code, answer.json().get("reason", "")


@pytest.mark.parametrize("kind", sorted(CAUSES))
def test_the_daemon_is_not_ready_while_its_data_folder_cannot_be_written_then_applies_once(
    world: World, disk: Disk, daemons: list[DaemonProcess], kind: str
) -> None:
    # a folder whose files are open for writing cannot be remounted read-only: with that
    # fault the store lives elsewhere (as a PostgreSQL store would)
    state = disk.state or (f"sqlite:///{world.root / 'state.db'}" if kind == "read-only" else None)
    daemon = DaemonProcess(world, data=disk.folder, state=state, **disk.env())
    daemons.append(daemon.start())
    daemon.wait_for(lambda: world.calls() == ["a"], what="the first commit applied")
    daemon.wait_for(daemon.ready, what="the daemon to be ready")
    fault(disk, kind)
    second = world.commit({**FILES, "components/a/component.yaml": component("a", inputs={"v": 2})})
    cause = f"cannot write to the data folder {disk.folder}: {CAUSES[kind]}"
    daemon.wait_for(lambda: readiness(daemon) == (503, cause), what=f"/readyz 503: {cause}")
    daemon.wait_for(lambda: "trying again" in daemon.logs(), what="a log line: kept, retried")
    assert world.calls() == ["a"]

    disk.heal()
    daemon.wait_for(lambda: readiness(daemon) == (200, ""), what="/readyz 200 again")
    daemon.wait_for(lambda: len(world.calls()) == 2, what="the commit applied", timeout=60)
    applied = [e["revision"] for e in world.journal() if e["action"] == "apply"]
    assert applied[-1] == second and world.calls() == ["a", "a"]
    # the run records the environment's revision once its last step has, a moment later
    daemon.wait_for(lambda: daemon.environment()["revision"] == second, what="verified")


def test_an_apply_done_is_not_failed_by_old_checkouts_it_cannot_remove(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk turning read-only between the last step and the pruning of old checkouts
    (the error injected at the checkout cache's boundary: the moment cannot be hit by a mount)."""
    store = SqliteStore(world.root / "state.db")
    workspace = world.workspace(store)
    try:

        def read_only(**_: object) -> list[str]:
            raise OSError(errno.EROFS, "Read-only file system", str(world.root / "data"))

        monkeypatch.setattr(workspace.checkouts, "prune", read_only)
        run = workspace.apply("dev")
        assert run.status.value == "succeeded"
        assert world.calls() == ["a"]
    finally:
        workspace.source.close()
        store.close()


def test_a_transaction_whose_commit_the_full_disk_refuses_is_a_store_error(disk: Disk) -> None:
    """SQLite writes a transaction's pages at its COMMIT: refused there, the error reached
    a command as sqlite3's own, and ended it with a traceback instead of one line."""
    if not disk.mounted:
        pytest.skip("SQLite's own writes are refused only by a disk that fills (no tmpfs)")
    store = SqliteStore(disk.folder / "state.db")
    try:
        store.save_cursor("before", 1)
        disk.fill()
        with pytest.raises(StoreError, match="database or disk is full"), store.transaction():
            store.save_cursor("during", 2)
        disk.heal()
        assert (store.get_cursor("before"), store.get_cursor("during")) == (1, None)
    finally:
        store.close()
