"""A repository whose database component makes a sensitive output that an app consumes.

`db` is given a secret-named input (`db_password`) and writes `admin_password` (declared
sensitive) and `host`; `app` reads `admin_password` alone and inside a connection URL. Both
run `secret_driver.py`, a real command driver that prints what it got and made, and writes
the inputs it received to `$TEST_RECEIVED/<component>.json` (`<component>.<action>.json` for
the other actions; outside the data folder); its apply fails for the component named in
`$TEST_FAIL`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.runtime.world import World, environment

DB_PASSWORD = "pw-db-in-clear-1"  # the secrets the tests hunt for
ADMIN_PASSWORD = "adm-Secret-777"
SECRETS = (DB_PASSWORD, ADMIN_PASSWORD)

DRIVER = """\
import json, os, pathlib, sys
action = sys.argv[1]
component = os.environ["GITOPSD_COMPONENT"]
inputs = json.loads(pathlib.Path(os.environ["GITOPSD_INPUTS"]).read_text())
print(component, action, "got", json.dumps(inputs, sort_keys=True))
if os.environ.get("TEST_ECHO"):  # what a careless check prints: the value it compares
    print("drift: admin_password adm-Secret-777 vs", inputs.get("db_password"))
if action == "apply" and os.environ.get("TEST_FAIL") == component:
    sys.exit(1)
received = pathlib.Path(os.environ["TEST_RECEIVED"])
received.mkdir(exist_ok=True)
kept = f"{component}.json" if action == "apply" else f"{component}.{action}.json"
(received / kept).write_text(json.dumps(inputs))
if action == "apply" and component == "db":
    made = {"admin_password": "adm-Secret-777", "host": "db.internal"}
    print("made admin password", made["admin_password"])
    pathlib.Path(os.environ["GITOPSD_OUTPUTS"]).write_text(json.dumps(made))
sys.exit(2 if action in ("plan", "check") else 0)
"""


def _component(name: str, layer: str, actions: tuple[str, ...], **spec: Any) -> str:
    commands = {a: [sys.executable, "../../secret_driver.py", a] for a in actions}
    return json.dumps(
        {
            "apiVersion": "gitopsd.io/v1",
            "kind": "Component",
            "metadata": {"name": name, "layer": layer},
            "spec": {"driver": {"type": "command", **commands}, **spec},
        }
    )


def files(
    *, db_secret: bool = True, every_action: bool = False, **app_inputs: str
) -> dict[str, str]:
    """`db_secret`: whether db has its secret input (without it, a new key does not make db
    apply again: see the fingerprints in docs/data-at-rest.md). `every_action`: the driver
    also runs as check, health and destroy, and a gate prints db's sensitive output."""
    secret = {"db_password": "${{ vars.db_password }}"} if db_secret else {}
    actions = ("plan", "apply", "check", "health", "destroy") if every_action else ("plan", "apply")
    db = _component(
        "db",
        "network",
        actions,
        inputs={**secret, "size": "${{ vars.size }}"},
        sensitive_outputs=["admin_password"],
    )
    app = _component(
        "app",
        "platform",
        actions,
        depends_on=["db"],
        inputs={
            "admin": "${{ components.db.outputs.admin_password }}",
            "url": "postgres://admin:${{ components.db.outputs.admin_password }}@"
            "${{ components.db.outputs.host }}/app",
            "host": "${{ components.db.outputs.host }}",
            **app_inputs,
        },
    )
    variables = {"db_password": DB_PASSWORD, "size": 3}
    gate = {"name": "smoke", "command": [sys.executable, "-c", f"print('saw {ADMIN_PASSWORD}')"]}
    gates = {"gates": [gate]} if every_action else {}
    return {
        "environments/dev.yaml": environment("dev", variables=variables, **gates),
        "components/db/component.yaml": db,
        "components/app/component.yaml": app,
        "secret_driver.py": DRIVER,
    }


def gitopsd(
    world: World, *args: str, umask: int = 0o022, **env: str
) -> subprocess.CompletedProcess[str]:
    """The real binary in the repository, started with `umask`, with `env` added."""
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "gitopsd", *args))
    full = {
        **os.environ,
        "TEST_JOURNAL": str(world.journal_path),
        "TEST_CONTROL": str(world.control_path),
        "TEST_RECEIVED": str(received_folder(world)),
        **env,
    }
    full.pop("GITOPSD_REPO", None)
    if "GITOPSD_ENCRYPTION_KEY" not in env:
        full.pop("GITOPSD_ENCRYPTION_KEY", None)
    return subprocess.run(
        ["sh", "-c", f"umask {umask:03o} && exec {command}"],
        cwd=world.repo,
        env=full,
        capture_output=True,
        text=True,
        timeout=90,
    )


def received_folder(world: World) -> Path:
    return world.root / "received"


def received(world: World, component: str, action: str = "apply") -> dict[str, Any]:
    """The inputs `component`'s driver was last given for `action`."""
    name = f"{component}.json" if action == "apply" else f"{component}.{action}.json"
    found: dict[str, Any] = json.loads((received_folder(world) / name).read_text())
    return found


def bytes_under(folder: Path) -> dict[str, bytes]:
    """Every regular file under `folder`, by path: what a backup of the data folder holds."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
    }


def leaks(text: str | bytes) -> list[str]:
    """The test secrets found in `text`."""
    data = text.encode() if isinstance(text, str) else text
    return [secret for secret in SECRETS if secret.encode() in data]
