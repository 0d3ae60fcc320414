"""A rollback re-applies a component as it was; when that apply makes a sensitive output, the
value it makes is new, known only once it has written it, and redacted from its output as
the forward apply's is (runtime/runs/compensation.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.rest.secrets import gitopsd, received_folder
from tests.runtime.world import World, environment

# Each apply of db makes a password no earlier call knew, and notes it for the test; app's
# apply fails once it is given `fail`.
DRIVER = """\
import json, os, pathlib, sys, uuid
inputs = json.loads(pathlib.Path(os.environ["GITOPSD_INPUTS"]).read_text())
if os.environ["GITOPSD_COMPONENT"] == "db":
    made = "made-Secret-" + uuid.uuid4().hex
    with open(pathlib.Path(os.environ["TEST_RECEIVED"]) / "made", "a") as noted:
        noted.write(made + "\\n")
    print("db made", made)
    pathlib.Path(os.environ["GITOPSD_OUTPUTS"]).write_text(json.dumps({"password": made}))
    sys.exit(0)
sys.exit(1 if inputs.get("fail") else 0)
"""


def _component(name: str, layer: str, **spec: object) -> str:
    commands = {a: [sys.executable, "../../made_driver.py", a] for a in ("plan", "apply")}
    return json.dumps(
        {
            "apiVersion": "gitopsd.io/v1",
            "kind": "Component",
            "metadata": {"name": name, "layer": layer},
            "spec": {"driver": {"type": "command", **commands}, **spec},
        }
    )


def files(version: int, *, fail: bool) -> dict[str, str]:
    db = _component("db", "network", sensitive_outputs=["password"], inputs={"v": version})
    app = _component("app", "platform", depends_on=["db"], inputs={"fail": fail})
    return {
        "environments/dev.yaml": environment("dev"),
        "components/db/component.yaml": db,
        "components/app/component.yaml": app,
        "made_driver.py": DRIVER,
    }


def test_the_password_a_rollbacks_apply_makes_is_redacted_from_its_output(
    tmp_path: Path,
) -> None:
    world = World.committed(tmp_path, files(1, fail=False))
    received_folder(world).mkdir()
    first = gitopsd(world, "apply", "--env", "dev")
    assert first.returncode == 0, first.stdout + first.stderr
    world.commit(files(2, fail=True))
    failed = gitopsd(world, "apply", "--env", "dev")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    shown = gitopsd(world, "runs", "--env", "dev", "--output", "json")
    assert shown.returncode == 0, shown.stderr

    made = (received_folder(world) / "made").read_text().split()
    assert len(made) == 3  # the first apply, the second, and the rollback's
    runs = json.loads(shown.stdout)["runs"]
    assert any(run.get("status") == "failed" for run in runs)
    text = shown.stdout + failed.stdout + failed.stderr
    details = gitopsd(world, "runs", "--run", runs[0]["id"], "--output", "json")
    text += details.stdout
    assert "db made ***" in details.stdout
    assert [value for value in made if value in text] == []
