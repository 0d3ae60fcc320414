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


PART = 120_000  # under the per-variable limit; 24 of them are over ARG_MAX (about 2 MiB)
WRITES_EIGHT_PARTS = f"""\
import json, os
with open(os.environ["GITOPSD_OUTPUTS"], "w") as file:
    json.dump({{"id": "big", **{{f"part{{n}}": str(n) * {PART} for n in range(8)}}}}, file)
"""


def upstream(name: str) -> str:
    """`big_upstream` under another name: each writes 8 outputs of 120,000 bytes (an outputs
    file holds at most 1 MiB)."""
    manifest = json.loads(big_upstream())
    manifest["metadata"]["name"] = name
    return json.dumps(manifest)


def test_inputs_together_over_arg_max_fail_the_step_at_once_naming_the_largest(
    tmp_path: Path,
) -> None:
    """Each input fits in a variable, all 24 do not fit in one environment: the step fails
    before the driver starts, on its first try, though its component allows three."""
    files = {"environments/dev.yaml": environment("dev")}
    parts = {}
    for up in ("up0", "up1", "up2"):
        files[f"components/{up}/component.yaml"] = upstream(up)
        files[f"components/{up}/apply.py"] = WRITES_EIGHT_PARTS
        parts |= {f"{up}_{n}": f"${{{{ components.{up}.outputs.part{n} }}}}" for n in range(8)}
    files["components/app/component.yaml"] = component(
        "app", deps=("up0", "up1", "up2"), inputs=parts, attempts=3
    )
    world = World.committed(tmp_path, files)
    assert gitopsd(world, "validate").returncode == 0

    done = gitopsd(world, "apply", "--env", "dev")

    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "Traceback" not in said and "retrying" not in said
    assert "cannot pass the driver's arguments and environment: " in said
    assert "(ARG_MAX); largest inputs: 'up2_7' (120,000 bytes), 'up2_6' (120,000" in said
    assert world.calls() == []  # app's driver never started
    run = json.loads(gitopsd(world, "runs", "--output", "json", "--limit", "1").stdout)["runs"][0]
    steps = {step["component"]: step for step in run["steps"]}
    assert steps["app"]["attempts"] == 1


def test_literal_inputs_over_a_mebibyte_together_are_located_by_validate(tmp_path: Path) -> None:
    inputs = {f"part{n}": "x" * PART for n in range(9)}  # 1,080,000 bytes, each one fine
    files = {
        "gitopsd.yaml": "apiVersion: gitopsd.io/v1\nkind: Settings\nlayers: [network]\n"
        "limits: {max_file_bytes: 2MiB}\n",
        "environments/dev.yaml": environment("dev"),
        "components/net/component.yaml": component("net", inputs=inputs),
    }
    world = World.committed(tmp_path, files)

    done = gitopsd(world, "validate")

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "components/net/component.yaml:1: spec.inputs: the inputs and the driver's env come to "
        "1,080,189 bytes as environment variables, over the 1 MiB a driver is given; largest: "
        "'part8' (120,000 bytes), 'part7' (120,000 bytes), 'part6' (120,000 bytes)"
    ]


def test_a_command_no_program_can_be_started_with_is_located_by_validate(tmp_path: Path) -> None:
    """`plan: [""]` and a NUL inside a command passed validate and failed only when run
    (`cannot start ''`, `embedded null byte`)."""
    component_yaml = (
        "apiVersion: gitopsd.io/v1\nkind: Component\nmetadata: {name: net, layer: network}\n"
        "spec:\n  driver:\n    type: command\n"
        '    plan: [""]\n'
        '    apply: ["./apply.sh", "a\\0b"]\n'
    )
    files = {
        "environments/dev.yaml": environment("dev"),
        "components/net/component.yaml": component_yaml,
    }
    world = World.committed(tmp_path, files)

    done = gitopsd(world, "validate")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines() == [
        "components/net/component.yaml:7: spec.driver.plan: the program (the command's first "
        "item) is empty",
        "components/net/component.yaml:8: spec.driver.apply: item 1 of the command holds a "
        "NUL byte, which no program can be given",
    ]
