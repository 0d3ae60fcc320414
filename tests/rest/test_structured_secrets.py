"""A sensitive output that is not a string (an object holding a password, a number such as a
PIN) is redacted from drivers' output like a string one: from the apply that made it, from a
dependent that prints the input rendered from it, and from a later check of its component."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.rest.secrets import gitopsd
from tests.runtime.world import World, environment

NESTED = "nested-Secret-4242"  # inside the object `admin`
PIN = 97531864  # a number, printed as its digits

DRIVER = """\
import json, os, pathlib, sys
action = sys.argv[1]
inputs = json.loads(pathlib.Path(os.environ["GITOPSD_INPUTS"]).read_text())
made = {"admin": {"user": "root", "password": "nested-Secret-4242"}, "pin": 97531864}
if os.environ["GITOPSD_COMPONENT"] == "db":
    print("db made", made["admin"]["password"], made["pin"], json.dumps(made["admin"]))
    if action == "apply":
        pathlib.Path(os.environ["GITOPSD_OUTPUTS"]).write_text(json.dumps(made))
else:
    print("app got", json.dumps(inputs), os.environ["GITOPSD_INPUT_ADMIN"])
sys.exit(2 if action == "check" else 0)
"""


def _component(name: str, layer: str, **spec: object) -> str:
    commands = {
        a: [sys.executable, "../../structured_driver.py", a] for a in ("plan", "apply", "check")
    }
    return json.dumps(
        {
            "apiVersion": "gitopsd.io/v1",
            "kind": "Component",
            "metadata": {"name": name, "layer": layer},
            "spec": {"driver": {"type": "command", **commands}, **spec},
        }
    )


def files() -> dict[str, str]:
    db = _component("db", "network", sensitive_outputs=["admin", "pin"])
    app = _component(
        "app",
        "platform",
        depends_on=["db"],
        inputs={
            "admin": "${{ components.db.outputs.admin }}",
            "pin": "${{ components.db.outputs.pin }}",
        },
    )
    return {
        "environments/dev.yaml": environment("dev"),
        "components/db/component.yaml": db,
        "components/app/component.yaml": app,
        "structured_driver.py": DRIVER,
    }


def shown_leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [value for value in (NESTED, str(PIN)) if value.encode() in data]


def test_object_and_number_sensitive_outputs_are_redacted_from_drivers_output(
    tmp_path: Path,
) -> None:
    world = World.committed(tmp_path, files())
    shown = ""
    for args, codes in (
        (("apply", "--env", "dev"), (0,)),
        (("runs", "--env", "dev", "--output", "json"), (0,)),
        (("drift", "--env", "dev", "--output", "json"), (2,)),
    ):
        done = gitopsd(world, *args)
        assert done.returncode in codes, done.stdout + done.stderr
        shown += done.stdout + done.stderr

    assert "db made *** ***" in shown
    assert shown_leaks(shown) == []
    stored = (world.repo / ".gitopsd").glob("state.db*")  # with its write-ahead log
    assert shown_leaks(b"".join(path.read_bytes() for path in stored)) == []
