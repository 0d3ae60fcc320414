"""End to end: `gitopsd apply` dispatches a github-actions component's workflow (on the fake)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import CommitFiles
from tests.github import manifests
from tests.github.fake_github import FakeGitHub

ENVIRONMENT = """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata: {name: dev}
spec:
  variables: {region: westeurope}
"""


def test_apply_dispatches_the_workflow_and_records_the_outputs(
    fake_github: FakeGitHub, commit: CommitFiles, repo_path: Path
) -> None:
    fake_github.script.polls_queued = fake_github.script.polls_in_progress = 0
    fake_github.script.result = {"exit_code": 0, "outputs": {"cluster_id": "aks-dev-1"}}
    sha = commit(
        {
            "environments/dev.yaml": ENVIRONMENT,
            "components/cluster/component.yaml": manifests.cluster(
                fake_github.url, inputs=manifests.REGION_INPUTS
            ),
        }
    )
    env = {**os.environ, "GITHUB_TOKEN": fake_github.token}
    env.pop("GITOPSD_REPO", None)

    def gitopsd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gitopsd", *args],
            cwd=repo_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    applied = gitopsd("apply", "--env", "dev")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    (dispatch,) = fake_github.dispatches()
    assert dispatch.body["inputs"] | {"correlation_id": "-"} == {
        "region": "westeurope",
        "node_count": "3",
        "environment": "dev",
        "component": "cluster",
        "action": "apply",
        "revision": sha,
        "correlation_id": "-",
    }
    status = json.loads(gitopsd("status", "--env", "dev", "--output", "json").stdout)
    (component,) = status["environments"][0]["components"]
    assert component["outputs"] == {"cluster_id": "aks-dev-1"}
    assert component["revision"] == sha
    runs = json.loads(gitopsd("runs", "--env", "dev", "--output", "json").stdout)["runs"]
    (step,) = runs[0]["steps"]
    assert "completed: success" in step["output"] and fake_github.token not in step["output"]
