"""Two `gitopsd apply --env dev` started at the same moment on a fresh data folder: one
applies, the other exits 1 saying who keeps dev busy, never with a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.runtime.world import World, component, environment

BUSY = re.compile(r"^gitopsd: error: dev is busy with run \S+ \(pid (\d+), host \S+\)$")
ONE = {
    "environments/dev.yaml": environment("dev"),
    "components/a/component.yaml": component("a"),
}


@pytest.mark.parametrize("attempt", range(3))
def test_of_two_applies_started_together_one_says_dev_is_busy(tmp_path: Path, attempt: int) -> None:
    world = World.committed(tmp_path, ONE, sleep={"a:apply": 1.5})
    racing = [
        world.start_gitopsd("apply", "--env", "dev"),
        world.start_gitopsd("apply", "--env", "dev"),
    ]
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
