"""components/README.md's rollback switch on the example, as a user runs it (issue 19, item
10): a commit reaching network and clusters, `FAKEINFRA_FAIL=clusters:apply gitopsd apply
--env dev` on a terminal: each retry is printed with its attempt and wait, network is rolled
back, and clusters' own rollback (its failed apply changed nothing) succeeds."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.cli.test_progress import _read_all
from tests.gitrepos import commit_example, git


def gitopsd(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITOPSD_", "FAKEINFRA_"))}
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", *args],
        cwd=repo, env=clean | env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def on_a_terminal(repo: Path, *args: str, **env: str) -> tuple[int, str]:
    """Exit code and what the terminal (stderr) showed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITOPSD_", "FAKEINFRA_"))}
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gitopsd", *args], cwd=repo, env=clean | env,
            stdout=subprocess.DEVNULL, stderr=terminal, timeout=120,
        )  # fmt: skip
        os.close(terminal)
        return done.returncode, _read_all(controller)
    finally:
        os.close(controller)


def region(repo: Path, component: str) -> str:
    state = repo / ".gitopsd" / "state" / "dev" / component / "resources.json"
    found: str = json.loads(state.read_text())["attributes"]["region"]
    return found


def test_the_rollback_switch_rolls_back_and_shows_each_retry(tmp_path: Path) -> None:
    repo = commit_example(tmp_path / "example")
    assert gitopsd(repo, "apply", "--env", "dev").returncode == 0
    before = git(repo, "rev-parse", "HEAD")
    dev = repo / "environments" / "dev.yaml"
    dev.write_text(dev.read_text().replace("region: westeurope", "region: northeurope"))
    git(repo, "commit", "-qam", "dev: another region")

    code, shown = on_a_terminal(repo, "apply", "--env", "dev", FAKEINFRA_FAIL="clusters:apply")
    assert code == 1, shown
    assert "clusters apply failed (try 1 of 3); retrying in " in shown
    assert "clusters apply failed (try 2 of 3); retrying in " in shown
    assert "network rolled back to" in shown and "clusters rolled back to" in shown
    run = json.loads(gitopsd(repo, "runs", "--limit", "1", "--output", "json").stdout)["runs"][0]
    assert run["error"] == f"failed: clusters; rolled back to {before[:12]}"
    rollbacks = {s["component"]: s["status"] for s in run["steps"] if s["action"] == "rollback"}
    assert rollbacks == {"network": "succeeded", "clusters": "succeeded"}
    assert (region(repo, "network"), region(repo, "clusters")) == ("westeurope", "westeurope")
