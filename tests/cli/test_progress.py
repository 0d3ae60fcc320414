"""Long commands show progress on a terminal and stay quiet when piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from tests.runtime.world import World


def environment_of(world: World) -> dict[str, str]:
    env = {**os.environ, "TEST_JOURNAL": str(world.journal_path),
           "TEST_CONTROL": str(world.control_path)}  # fmt: skip
    env.pop("GITOPSD_REPO", None)
    return env


def test_apply_on_a_terminal_shows_each_component_as_it_applies(world: World) -> None:
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gitopsd", "apply", "--env", "dev"],
            cwd=world.repo, env=environment_of(world), stdout=subprocess.PIPE,
            stderr=terminal, timeout=120,
        )  # fmt: skip
        os.close(terminal)
        shown = _read_all(controller)
    finally:
        os.close(controller)
    assert done.returncode == 0
    for name in ("net", "dns", "k8s", "app"):
        assert f"{name} applied (new in this environment)" in shown
    assert "apply succeeded" in shown and "s] " in shown  # elapsed seconds on each line


def test_apply_piped_prints_no_progress(world: World) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gitopsd", "apply", "--env", "dev"],
        cwd=world.repo, env=environment_of(world), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "applied (new in this environment)" not in done.stderr + done.stdout.split("\n")[0]
    assert done.stderr == ""


def _read_all(controller: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
