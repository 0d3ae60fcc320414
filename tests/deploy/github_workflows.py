"""Reading the workflows of deploy/github/workflows/ and running their steps' scripts here.

A step runs the way GitHub's runner runs a `shell: bash` step: its `run:` text in a file,
`bash --noprofile --norc -eo pipefail FILE`, with the workflow's, job's and step's `env:`
(their `${{ ... }}` expressions replaced by values the test gives), and GITHUB_STEP_SUMMARY,
GITHUB_OUTPUT and RUNNER_TEMP pointing into the test's folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "deploy" / "github" / "workflows"
GITHUB_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]  # GitHub's `shell: bash`
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
VENV_BIN = Path(sys.executable).parent  # where this checkout's `gitopsd` script is installed


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load(path: Path) -> dict[str, Any]:
    """The workflow as data; YAML 1.1 reads the key `on` as True, so it is renamed back."""
    data: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def dispatch_inputs(workflow: Mapping[str, Any]) -> dict[str, Any]:
    on = workflow["on"]
    dispatch = on.get("workflow_dispatch") if isinstance(on, dict) else None
    return dict((dispatch or {}).get("inputs") or {})


def steps(workflow: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def find_step(workflow: Mapping[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """The step whose `name` (as written, expressions and all) or `id` is `name`."""
    for job_id, step in steps(workflow):
        if name in (step.get("name"), step.get("id")):
            return job_id, step
    raise LookupError(f"no step {name!r}")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace each `${{ expression }}` by values[expression], failing on one not given."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression not in values:
            raise KeyError(f"the test gives no value for ${{{{ {expression} }}}}")
        return values[expression]

    return EXPRESSION.sub(value, str(text))


@dataclass(frozen=True)
class StepResult:
    status: int
    stdout: str
    summary: str
    outputs: dict[str, str]


def run_step(
    workflow: Mapping[str, Any],
    name: str,
    *,
    cwd: Path,
    values: Mapping[str, str],
    path: Path = VENV_BIN,
) -> StepResult:
    """Run one step's script in `cwd` with `path` first on PATH (where `gitopsd` is)."""
    job_id, step = find_step(workflow, name)
    runner = cwd.parent / f"runner-{len(list(cwd.parent.glob('runner-*')))}"
    runner.mkdir()
    script = runner / "step.sh"
    script.write_text(step["run"], encoding="utf-8")
    environment = _environment(workflow, job_id, step, values)
    environment.update(
        PATH=f"{path}{os.pathsep}{os.environ['PATH']}",
        GITHUB_STEP_SUMMARY=str(runner / "summary.md"),
        GITHUB_OUTPUT=str(runner / "output.txt"),
        RUNNER_TEMP=str(runner),
    )
    done = subprocess.run(
        [*GITHUB_BASH, str(script)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return StepResult(
        status=done.returncode,
        stdout=done.stdout + done.stderr,
        summary=_read(runner / "summary.md"),
        outputs=_outputs(_read(runner / "output.txt")),
    )


def _environment(
    workflow: Mapping[str, Any], job_id: str, step: Mapping[str, Any], values: Mapping[str, str]
) -> dict[str, str]:
    """This process's environment without gitopsd's and GitHub's own variables, then the
    workflow's, the job's and the step's `env:` in that order (the step's wins)."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITOPSD_", "GITHUB_", "RUNNER_"))
    }
    for scope in (workflow, workflow["jobs"][job_id], step):
        for key, value in (scope.get("env") or {}).items():
            kept[key] = substitute(value, values)
    return kept


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _outputs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
