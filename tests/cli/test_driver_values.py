"""Values no driver can be given (issue 17, finding 7): one environment variable holds less
than 128 KiB and no NUL. Written in a manifest, `validate` refuses them at their line;
rendered from an upstream's outputs, the step fails naming the input, before the driver runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.cli.test_run_commands import gitopsd
from tests.runtime.world import World, component, environment

BIG = 200 * 1024
WRITES_A_BIG_OUTPUT = f"""\
import json, os
with open(os.environ["GITOPSD_OUTPUTS"], "w") as file:
    json.dump({{"id": "big", "bundle": "x" * {BIG}}}, file)
"""


def big_upstream() -> str:
    """A component whose apply writes a 200 KiB output, as a CA bundle or kubeconfig might."""
    manifest = json.loads(component("big"))
    apply = [sys.executable, "apply.py"]
    manifest["spec"]["driver"].update(apply=apply, plan=apply, destroy=apply)
    return json.dumps(manifest)


def test_literal_values_no_variable_can_hold_are_located_by_validate(tmp_path: Path) -> None:
    long = "x" * BIG
    dev = (
        "apiVersion: gitopsd.io/v1\nkind: Environment\nmetadata: {name: dev}\nspec:\n"
        f'  variables:\n    nul: "a\\0b"\n    long: {long}\n'
    )
    files = {
        "environments/dev.yaml": dev,
        "components/net/component.yaml": component("net", inputs={"cert": long}),
    }
    world = World.committed(tmp_path, files)

    done = gitopsd(world, "validate")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    too_long = f"value of {BIG:,} bytes: one environment variable holds less than 128 KiB"
    assert done.stdout.splitlines() == [
        f"components/net/component.yaml:1: spec.inputs.cert: {too_long}, so no driver could "
        "be given it",
        "environments/dev.yaml:6: spec.variables.nul: a NUL character, which no environment "
        "variable can hold",
        f"environments/dev.yaml:7: spec.variables.long: {too_long}, so no driver could be given it",
    ]


def test_a_200_kib_output_as_an_input_fails_that_step_naming_the_input(tmp_path: Path) -> None:
    files = {
        "environments/dev.yaml": environment("dev"),
        "components/big/component.yaml": big_upstream(),
        "components/big/apply.py": WRITES_A_BIG_OUTPUT,
        "components/app/component.yaml": component(
            "app", deps=("big",), inputs={"bundle": "${{ components.big.outputs.bundle }}"}
        ),
    }
    world = World.committed(tmp_path, files)

    done = gitopsd(world, "apply", "--env", "dev")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert (
        f"cannot pass input 'bundle' as 'GITOPSD_INPUT_BUNDLE': its value is {BIG:,} bytes, "
        "and one environment variable holds less than 128 KiB"
    ) in done.stdout + done.stderr
    assert world.calls() == []  # app's driver never started
