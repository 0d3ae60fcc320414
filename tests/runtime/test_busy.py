"""Two `gitopsd apply --env dev` started at the same moment on a fresh data folder: one
applies, the other exits 1 saying who keeps dev busy, never with a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.world import World, component, environment

BUSY = re.compile(r"^gitopsd: error: dev is busy with run \S+ \(pid (\d+), host \S+\)$")
ONE = {
    "environments/dev.yaml": environment("dev"),
    "components/a/component.yaml": component("a"),
}


def start_apply(world: World) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "gitopsd", "apply", "--env", "dev", "--repo", str(world.repo)]
    command += ["--data-dir", str(world.root / "data")]
    command += ["--state", f"sqlite:///{world.root / 'data' / 'state.db'}"]
    env = {
        **os.environ,
        "TEST_JOURNAL": str(world.journal_path),
        "TEST_CONTROL": str(world.control_path),
    }
    return subprocess.Popen(
        command, cwd=world.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("attempt", range(3))
def test_of_two_applies_started_together_one_says_dev_is_busy(tmp_path: Path, attempt: int) -> None:
    world = World.committed(tmp_path, ONE, sleep={"a:apply": 1.5})
    racing = [start_apply(world), start_apply(world)]
    ended = [(p.wait(60), *p.communicate()) for p in racing]
    assert sorted(code for code, _, _ in ended) == [0, 1], ended
    (_, _, refused), (_, _, applied) = sorted(ended, key=lambda e: -e[0])
    assert "Traceback" not in refused + applied
    message = refused.strip()
    found = BUSY.match(message)
    assert found, message
    winner = next(p for p in racing if p.returncode == 0)
    assert int(found[1]) == winner.pid
    assert world.calls() == ["a"]
