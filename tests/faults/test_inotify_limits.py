"""The kernel's inotify limits reached (instances or watches, shared by every process of the
user on the machine): `gitopsd serve` crashed at start with watchdog's traceback. It now says
so in one line, looks at the refs by polling instead, and still applies each commit by itself.

The limits are injected (`inject/sitecustomize.py`): reaching them for real would starve every
other test of the user at the same moment."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.daemon.harness import DaemonProcess
from tests.faults.disks import INJECT
from tests.runtime.world import World, component, environment

FILES = {"environments/dev.yaml": environment("dev"), "components/a/component.yaml": component("a")}
LIMITS = {"instances": errno.EMFILE, "watches": errno.ENOSPC}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, FILES)


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_the_daemon_polls_the_refs_when_the_inotify_limit_is_reached(
    world: World, daemons: list[DaemonProcess], limit: str
) -> None:
    path = os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, "GITOPSD_TEST_INOTIFY_ERRNO": str(LIMITS[limit])}
    daemon = DaemonProcess(world, **env)
    daemons.append(daemon.start())
    daemon.wait_for(daemon.ready, what="the daemon to be ready")
    daemon.wait_for(lambda: world.calls() == ["a"], what="the first commit applied")
    second = world.commit({**FILES, "components/a/component.yaml": component("a", inputs={"v": 2})})
    # polled every second, not at the next 30 s poll of the head
    daemon.wait_for(lambda: world.calls() == ["a", "a"], what="the commit applied", timeout=10)
    applied = [e["revision"] for e in world.journal() if e["action"] == "apply"]
    assert applied[-1] == second
    logs = daemon.logs()
    assert "Traceback" not in logs, logs
    assert "inotify" in logs and "looking at them every 1s instead" in logs, logs
