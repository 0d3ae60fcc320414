"""What drivers inherit from gitopsd's environment: everything but gitopsd's own settings and
secrets (every GITOPSD_* variable, the GitHub tokens and the state store's PGPASSWORD), which
reach a driver only when a component's `env` passes one explicitly, as a secret reference.
Real drivers and a real gate dump the environment they were started with."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from tests.gitrepos import commit_files
from tests.secrets.stand import DEV, component, dumped, gitopsd, stand

GITOPSD_OWN = {
    "GITOPSD_TOKEN": "api-token-111",
    "GITOPSD_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
    "GITOPSD_SECRET_UNUSED": "unused-secret-222",
    "GITOPSD_WEBHOOK_SECRET": "webhook-secret-333",
    "GITOPSD_GITHUB_TOKEN": "status-token-444",
    "GITHUB_TOKEN": "ambient-github-555",
    "GH_TOKEN": "ambient-gh-666",
    "PGPASSWORD": "state-store-password-888",  # the PostgreSQL store's, as the docs advise
}
GATE = """\
import json, os, sys
with open(sys.argv[1], "w") as file:
    json.dump(dict(os.environ), file)
"""


def test_no_driver_or_gate_inherits_gitopsd_settings_or_secrets(tmp_path: Path) -> None:
    dump = tmp_path / "dumps"
    repo = stand(tmp_path, {"plain": component("plain", dump, inputs={})})
    gate = {"name": "env", "command": [sys.executable, "gate.py", str(dump / "gate.json")]}
    dev = {**json.loads(DEV), "spec": {"gates": [gate]}}
    commit_files(repo, {"environments/dev.yaml": json.dumps(dev), "gate.py": GATE})

    done = gitopsd(tmp_path, "apply", "--env", "dev", env={**GITOPSD_OWN, "MY_SETTING": "kept"})

    assert done.returncode == 0, done.stdout + done.stderr
    for env in (
        dumped(tmp_path, "plain", "apply")["env"],
        json.loads((dump / "gate.json").read_text()),
    ):
        assert env["MY_SETTING"] == "kept"  # the rest of the environment is inherited
        for name, value in GITOPSD_OWN.items():
            assert name not in env
            assert value not in json.dumps(env)


def test_a_component_passes_the_github_token_explicitly(tmp_path: Path) -> None:
    dump = tmp_path / "dumps"
    passes = component(
        "passes", dump, inputs={}, env={"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    )
    stand(tmp_path, {"passes": passes, "plain": component("plain", dump, inputs={})})
    env = {**GITOPSD_OWN, "GITOPSD_SECRET_GITHUB_TOKEN": "chosen-github-777"}

    done = gitopsd(tmp_path, "apply", "--env", "dev", env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert dumped(tmp_path, "passes", "apply")["env"]["GITHUB_TOKEN"] == "chosen-github-777"
    assert "GITHUB_TOKEN" not in dumped(tmp_path, "plain", "apply")["env"]
