"""A YAML key that is not text (issue 17, finding 6) crashed `validate` and `apply` with
`TypeError: unhashable type`: both now exit 1 with the problem at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_run_commands import gitopsd
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

DEV = """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata: {name: dev}
spec:
  variables:
    size: 3
    ? [a, b]
    : 1
"""


@pytest.mark.parametrize("command", [("validate",), ("apply", "--env", "dev")])
def test_a_list_as_a_key_is_a_located_problem_not_a_crash(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    world = World.committed(tmp_path, layered(**{"environments/dev.yaml": DEV}))

    done = gitopsd(world, *command)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "environments/dev.yaml:7: mapping key is a list: keys must be text" in (
        done.stdout + done.stderr
    )
    assert world.journal() == []
