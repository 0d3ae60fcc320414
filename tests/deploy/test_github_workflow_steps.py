"""The workflows' scripts, run with bash as GitHub runs them, on a copy of the example repo
with the real `gitopsd` (or a fake one for exit codes the example cannot produce quickly),
and the promote workflow against a local server that checks bodies with the API's models."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gitopsd.api.bodies import ApprovalRequest, PromotionRequest
from tests.deploy.github_workflows import WORKFLOWS, StepResult, load, run_step, steps
from tests.gitrepos import commit_example, git

DISPATCH = load(WORKFLOWS / "gitopsd-dispatch.yml")
VALIDATE = load(WORKFLOWS / "gitopsd-validate.yml")
DRIFT = load(WORKFLOWS / "gitopsd-drift.yml")
PROMOTE = load(WORKFLOWS / "gitopsd-promote.yml")
UNSET_VARS = {"vars.GITOPSD_STATE": "", "vars.GITOPSD_DATA_DIR": ""}  # the defaults apply
RUN_STEP = "gitopsd ${{ inputs.action }}"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The example repo committed into a fresh repository: the runner's checkout."""
    return commit_example(tmp_path / "checkout")


def dispatch(checkout: Path, action: str, components: str = "", **options: Any) -> StepResult:
    values = {
        "inputs.action": action,
        "inputs.target_environment": "dev",
        "inputs.components": components,
        **UNSET_VARS,
    }
    return run_step(DISPATCH, RUN_STEP, cwd=checkout, values=values, **options)


# --- dispatch ---------------------------------------------------------------------------------


def test_dispatch_plan_apply_and_plan_again(example: Path) -> None:
    planned = dispatch(example, "plan")
    assert planned.status == 0, planned.stdout  # exit 2, changes: not a failure
    assert planned.outputs == {"result": "changes to apply", "exit-code": "2"}
    assert planned.summary.startswith("## gitopsd plan `dev`: changes to apply\n")
    assert "Components: all. Exit code 2." in planned.summary
    assert "4 to change, 0 unchanged, 0 failed" in planned.summary
    assert "4 to change" in planned.stdout  # the log shows it too

    applied = dispatch(example, "apply", "network, clusters")
    assert applied.status == 0, applied.stdout
    assert applied.summary.startswith("## gitopsd apply `dev`: succeeded\n")
    assert "Components: network, clusters. Exit code 0." in applied.summary
    again = dispatch(example, "plan", "network")
    assert again.status == 0, again.stdout
    assert again.outputs["result"] == "no changes"
    assert (example / ".gitopsd" / "state.db").is_file()  # the default state, vars unset


@pytest.fixture
def fake_gitopsd(tmp_path: Path) -> Path:
    """A `gitopsd` that records its arguments one a line and exits with $FAKE_EXIT."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    script = folder / "gitopsd"
    script.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$RUNNER_TEMP/argv"\necho "said $1"\nexit "$FAKE_EXIT"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    ("action", "code", "passes", "result"),
    [
        ("plan", 0, True, "no changes"),
        ("plan", 2, True, "changes to apply"),
        ("plan", 1, False, "failed (exit 1)"),
        ("apply", 0, True, "succeeded"),
        ("apply", 1, False, "failed (exit 1)"),
        ("apply", 3, False, "not applied: waiting for approvals or a change window"),
        ("apply", 2, False, "failed (exit 2)"),
        ("destroy", 0, True, "succeeded"),
        ("destroy", 1, False, "failed (exit 1)"),
    ],
)
def test_dispatch_exit_code_mapping(
    tmp_path: Path,
    fake_gitopsd: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    code: int,
    passes: bool,
    result: str,
) -> None:
    monkeypatch.setenv("FAKE_EXIT", str(code))
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    done = dispatch(checkout, action, "a b, c", path=fake_gitopsd)
    assert (done.status == 0) is passes, done.stdout
    assert done.outputs == {"result": result, "exit-code": str(code)}
    assert f"## gitopsd {action} `dev`: {result}" in done.summary
    assert f"said {action}" in done.summary
    if not passes:
        assert f"::error title=gitopsd {action} dev::{result}" in done.stdout
    argv = (tmp_path / "runner-0" / "argv").read_text(encoding="utf-8").splitlines()
    assert argv == [action, "--env", "dev", "--components", "a b, c"]  # one word, as typed


def test_dispatch_without_components_passes_no_components_flag(
    tmp_path: Path, fake_gitopsd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EXIT", "0")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    assert dispatch(checkout, "destroy", path=fake_gitopsd).status == 0
    argv = (tmp_path / "runner-0" / "argv").read_text(encoding="utf-8").splitlines()
    assert argv == ["destroy", "--env", "dev"]


# --- validate and diff ------------------------------------------------------------------------


def commit_change(checkout: Path, path: str, old: str, new: str) -> None:
    target = checkout / path
    target.write_text(target.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    git(checkout, "commit", "-qam", f"{path}: {new}")


def test_validate_then_diff_of_each_environment_against_the_base(example: Path) -> None:
    base = git(example, "rev-parse", "HEAD")
    commit_change(example, "environments/dev.yaml", "node_count: 1", "node_count: 2")
    qa = (example / "environments/dev.yaml").read_text(encoding="utf-8")
    (example / "environments/qa.yaml").write_text(qa.replace("name: dev", "name: qa"), "utf-8")
    git(example, "add", "-A")
    git(example, "commit", "-qm", "qa")
    valid = run_step(VALIDATE, "gitopsd validate", cwd=example, values={})
    assert valid.status == 0, valid.stdout
    assert valid.summary == "## gitopsd validate: valid\n"

    values = {"github.event.pull_request.base.sha": base}
    diffed = run_step(VALIDATE, "gitopsd diff per environment", cwd=example, values=values)
    assert diffed.status == 0, diffed.stdout
    assert diffed.summary.startswith(f"## gitopsd diff: `{base[:12]}` (base) to this pull request")
    sections = dict(
        section.split("</code>", 1) for section in diffed.summary.split("<summary><code>")[1:]
    )
    assert list(sections) == ["dev", "prod", "qa", "staging"]  # a new one too
    assert all(section.startswith(": differs</summary>") for section in sections.values())
    # clusters reads node_count and an output of network, unknown where nothing was applied:
    # the variable still shows; elsewhere only the revision platform records changed.
    dev, staging = sections["dev"], sections["staging"]
    assert "\n-    node_count: 1\n+    node_count: 2\n" in dev  # the desired state as YAML
    assert "  ~ clusters" in dev  # after the summary of what changes
    assert "environments/dev.yaml: node_count: 2 (Test Author)" in dev
    released = [line for line in staging.splitlines() if line.startswith("-    release: ")]
    assert "+    node_count: 2" not in staging and len(released) == 1 and base in released[0]
    assert "--- qa@" in sections["qa"] and "+    environment: qa\n" in sections["qa"]


def test_an_invalid_manifest_fails_validate_with_an_annotation_on_its_line(example: Path) -> None:
    commit_change(example, "environments/staging.yaml", "soak: 10s", "soak: soon")
    invalid = run_step(VALIDATE, "gitopsd validate", cwd=example, values={})
    assert invalid.status == 1, invalid.stdout
    annotations = [line for line in invalid.stdout.splitlines() if line.startswith("::error")]
    assert annotations == [
        "::error file=environments/staging.yaml,line=11::spec.promotion.soak: invalid duration"
        " 'soon': use a number with s, m or h, e.g. 90s, 15m, 1h30m"
    ], invalid.stdout
    assert invalid.summary.startswith("## gitopsd validate: invalid (exit 1)")
    assert "environments/staging.yaml:11: spec.promotion.soak" in invalid.summary


# --- drift ------------------------------------------------------------------------------------


def test_drift_reports_uploads_then_fails_the_job(example: Path) -> None:
    assert dispatch(example, "apply").status == 0
    tamper = [
        sys.executable,
        "components/_lib/fakeinfra.py",
        "tamper",
        "--state-dir",
        ".gitopsd/state/dev/clusters",
        "--key",
        "node_count",
        "--value",
        "9",
    ]
    subprocess.run(tamper, cwd=example, check=True, capture_output=True)
    checked = run_step(DRIFT, "gitopsd drift", cwd=example, values=UNSET_VARS)
    assert checked.status == 0, checked.stdout  # the report is uploaded before the verdict
    assert checked.outputs == {"exit-code": "2"}
    report = (example / "drift.md").read_text(encoding="utf-8")
    assert checked.summary == report
    assert "## Drift in `dev`" in report and "Drifted and re-applied: `clusters`" in report
    uploads = [step for _, step in steps(DRIFT) if "upload-artifact" in step.get("uses", "")]
    upload = uploads[0]
    assert upload["if"] == "always()" and upload["with"]["path"] == "drift.md"
    values = {**UNSET_VARS, "steps.drift.outputs.exit-code": "2"}
    verdict = run_step(DRIFT, "Verdict", cwd=example, values=values)
    assert verdict.status == 1
    assert "::error title=gitopsd drift::drift found" in verdict.stdout


@pytest.mark.parametrize(("code", "fails"), [("0", False), ("1", True), ("", True)])
def test_drift_verdict_of_sync_and_errors(example: Path, code: str, fails: bool) -> None:
    values = {**UNSET_VARS, "steps.drift.outputs.exit-code": code}
    verdict = run_step(DRIFT, "Verdict", cwd=example, values=values)
    assert (verdict.status == 1) is fails, verdict.stdout


# --- promote ----------------------------------------------------------------------------------


class FakeDaemon(BaseHTTPRequestHandler):
    """Answers like gitopsd's API: bodies checked with its own request models; every request
    recorded as (method, path, authorization, body)."""

    seen: list[tuple[str, str, str, Any]]
    answer: tuple[int, dict[str, Any]]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        self.seen.append(("POST", self.path, self.headers["Authorization"], body))
        promoting = self.path.endswith("/promotions")
        model: type[BaseModel] = PromotionRequest if promoting else ApprovalRequest
        try:
            model.model_validate_json(raw)
        except ValidationError as error:
            self._reply(422, {"error": str(error)})
            return
        self._reply(*self.answer)

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers["Authorization"], None))
        self._reply(200, {"name": "prod", "status": "waiting_approval"})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `seen`."""


@pytest.fixture
def daemon() -> Iterator[tuple[str, type[FakeDaemon]]]:
    handler = type("Handler", (FakeDaemon,), {"seen": [], "answer": (202, {"id": "r1"})})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


def promote(tmp_path: Path, url: str, operation: str, revision: str = "") -> StepResult:
    checkout = tmp_path / "checkout"
    checkout.mkdir(exist_ok=True)
    values = {
        "inputs.operation": operation,
        "inputs.target_environment": "prod",
        "inputs.revision": revision,
        "vars.GITOPSD_URL || secrets.GITOPSD_URL": url,
        "secrets.GITOPSD_TOKEN": "s3cret-token",
    }
    return run_step(
        PROMOTE, "gitopsd ${{ inputs.operation }} through the API", cwd=checkout, values=values
    )


def test_promote_asks_for_a_promotion_and_shows_the_status(
    tmp_path: Path, daemon: tuple[str, type[FakeDaemon]]
) -> None:
    url, handler = daemon
    done = promote(tmp_path, url, "promote", "abc123")
    assert done.status == 0, done.stdout
    assert handler.seen == [
        (
            "POST",
            "/api/v1/environments/prod/promotions",
            "Bearer s3cret-token",
            {"revision": "abc123"},
        ),
        ("GET", "/api/v1/environments/prod", "Bearer s3cret-token", None),
    ]
    assert "HTTP 202" in done.stdout and '{"id": "r1"}' in done.stdout
    assert done.summary.startswith("## gitopsd promote `prod`: HTTP 202")
    assert '"status": "waiting_approval"' in done.summary
    assert "s3cret-token" not in done.stdout + done.summary
    assert not (tmp_path / "runner-0" / "gitopsd-auth").exists()  # the token file is removed


def test_a_refused_approval_fails_with_the_daemons_answer(
    tmp_path: Path, daemon: tuple[str, type[FakeDaemon]]
) -> None:
    url, handler = daemon
    handler.answer = (403, {"error": "approval refused: ci wrote this revision"})
    done = promote(tmp_path, url, "approve")
    assert done.status == 1, done.stdout
    assert handler.seen == [
        ("POST", "/api/v1/environments/prod/approvals", "Bearer s3cret-token", {})
    ]
    assert "HTTP 403" in done.stdout and "ci wrote this revision" in done.stdout
    assert "::error title=gitopsd approve prod::HTTP 403" in done.stdout
    assert "ci wrote this revision" in done.summary


def test_promote_without_a_url_says_what_to_set(tmp_path: Path) -> None:
    done = promote(tmp_path, "", "promote")
    assert done.status == 1
    assert "set the GITOPSD_URL variable and the GITOPSD_TOKEN secret" in done.stdout
