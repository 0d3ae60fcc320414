"""A GitOps repo whose drivers dump what they were given: for the secrets tests.

Every call of `dump.py` writes `<component>.<action>.json` into the folder its `DUMP` variable
names: its whole environment and its inputs file. It prints the value of its `password` input
(as a careless tool would), and an apply writes an output `ready`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.gitrepos import commit_files

DUMP_SCRIPT = """\
import json, os, sys
inputs = json.load(open(os.environ["GITOPSD_INPUTS"]))
action = os.environ["GITOPSD_ACTION"]
name = f"{os.environ['GITOPSD_COMPONENT']}.{action}.json"
with open(os.path.join(os.environ["DUMP"], name), "w") as file:
    json.dump({"env": dict(os.environ), "inputs": inputs}, file)
print("password is", inputs.get("password"))
if action == "apply":
    with open(os.environ["GITOPSD_OUTPUTS"], "w") as file:
        json.dump({"ready": "yes"}, file)
sys.exit(2 if action == "plan" else 0)
"""


def component(
    name: str,
    dump: Path,
    *,
    inputs: dict[str, Any],
    env: dict[str, str] | None = None,
    deps: tuple[str, ...] = (),
) -> str:
    command = [sys.executable, "dump.py"]
    return json.dumps(
        {
            "apiVersion": "gitopsd.io/v1",
            "kind": "Component",
            "metadata": {"name": name, "layer": "network"},
            "spec": {
                "depends_on": list(deps),
                "inputs": inputs,
                "driver": {
                    "type": "command",
                    "plan": command,
                    "apply": command,
                    "destroy": command,
                    "env": {"DUMP": str(dump), **(env or {})},
                },
            },
        }
    )


DEV = json.dumps(
    {"apiVersion": "gitopsd.io/v1", "kind": "Environment", "metadata": {"name": "dev"}, "spec": {}}
)


def stand(root: Path, components: dict[str, str]) -> Path:
    """A committed repo at `root/repo` with the environment dev and `components` (name ->
    manifest), each with `dump.py`; the dumps go to `root/dumps`."""
    files = {"environments/dev.yaml": DEV}
    for name, manifest in components.items():
        files[f"components/{name}/component.yaml"] = manifest
        files[f"components/{name}/dump.py"] = DUMP_SCRIPT
    (root / "dumps").mkdir(exist_ok=True)
    repo = root / "repo"
    commit_files(repo, files)
    return repo


def gitopsd(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real `gitopsd` on `root/repo`, its data in `root/data`, with only `env` of the
    GITOPSD_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GITOPSD_")}
    command = [sys.executable, "-m", "gitopsd", *args]
    command += ["--repo", str(root / "repo"), "--data-dir", str(root / "data")]
    return subprocess.run(
        command,
        cwd=root,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def dumped(root: Path, component: str, action: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((root / "dumps" / f"{component}.{action}.json").read_text())
    return found


def files_holding(folder: Path, value: str) -> list[Path]:
    """Every file below `folder` whose bytes contain `value`."""
    needle = value.encode()
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]
