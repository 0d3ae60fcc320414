"""`gitopsd validate` as users run it: a real subprocess on real git repositories."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from gitopsd.engine.sources import Problem
from tests.gitrepos import commit_files
from tests.validation.cases import CORPUS, load_case, unmatched

PROBLEM_LINE = re.compile(r"^[^:]+:\d+: .+")

VALID_FILES: dict[str, str] = {
    "environments/dev.yaml": """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata:
  name: dev
spec:
  variables: {region: westeurope}
""",
    "environments/prod.yaml": """\
apiVersion: gitopsd.io/v1
kind: Environment
metadata:
  name: prod
spec:
  promotion: {from: dev}
  variables: {region: northeurope}
""",
    "components/network/component.yaml": """\
apiVersion: gitopsd.io/v1
kind: Component
metadata:
  name: network
  layer: network
spec:
  inputs:
    region: "${{ vars.region }}"
  driver: {type: command, plan: ./plan.sh, apply: ./apply.sh}
""",
    "components/clusters/component.yaml": """\
apiVersion: gitopsd.io/v1
kind: Component
metadata:
  name: clusters
  layer: clusters
spec:
  depends_on: [network]
  inputs:
    vnet_id: "${{ components.network.outputs.vnet_id }}"
  driver: {type: command, plan: ./plan.sh, apply: ./apply.sh}
""",
}
# the same repo with parallelism 0 in prod: one problem, at line 7
BROKEN_PROD = VALID_FILES["environments/prod.yaml"].replace(
    "  promotion: {from: dev}\n", "  promotion: {from: dev}\n  parallelism: 0\n"
)
BROKEN_PROBLEM = (
    "environments/prod.yaml:7: spec.parallelism: Input should be greater than or equal to 1"
)


def run_validate(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m gitopsd validate ARGS` with no GITOPSD_* variables but those in `env`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GITOPSD_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", "validate", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout
    assert "Traceback" not in done.stderr


@pytest.fixture
def valid_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    commit_files(repo, VALID_FILES, message="valid")
    return repo


def test_the_summary_counts_in_words_that_agree_with_the_numbers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    one = {"environments/dev.yaml": VALID_FILES["environments/dev.yaml"]}
    commit_files(repo, one, message="one environment")
    done = run_validate("--repo", str(repo), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.startswith("valid: 1 environment, 0 components at ")


def test_valid_repo_exits_0_and_prints_only_a_summary(valid_repo: Path, tmp_path: Path) -> None:
    done = run_validate(
        "--repo", str(valid_repo), "--data-dir", str(tmp_path / "data"), cwd=tmp_path
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("valid:")
    assert_no_traceback(done)


def test_problems_in_several_files_are_printed_as_path_line_message(tmp_path: Path) -> None:
    case = load_case(CORPUS / "several-problems-several-files.yaml")
    repo = tmp_path / "repo"
    case.commit(repo)

    done = run_validate("--repo", str(repo), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert_no_traceback(done)
    lines = done.stdout.splitlines()
    assert lines, done.stderr
    for line in lines:
        assert PROBLEM_LINE.match(line), f"not path:line: message: {line!r}"
    printed = [_problem(line) for line in lines]
    assert len({p.path for p in printed}) >= 5  # several files in one run
    assert not unmatched(case.expect, printed) and len(printed) == len(case.expect), done.stdout
    assert done.stderr.startswith("invalid:")


def test_source_problems_do_not_crash_the_command(tmp_path: Path) -> None:
    """Undecodable, empty, tab-indented and non-mapping files at once: problems, no traceback."""
    repo = tmp_path / "repo"
    commit_files(
        repo,
        {
            **VALID_FILES,
            "environments/latin.yaml": b"apiVersion: gitopsd.io/v1\n# caf\xe9\n",
            "environments/empty.yaml": "",
            "environments/tabs.yaml": "kind: Environment\nspec:\n\tparallelism: 1\n",
            "components/list/component.yaml": "- a\n- b\n",
        },
    )

    done = run_validate("--repo", str(repo), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)

    assert done.returncode == 1
    assert_no_traceback(done)
    paths = [_problem(line).path for line in done.stdout.splitlines()]
    assert sorted(paths) == [
        "components/list/component.yaml",
        "environments/empty.yaml",
        "environments/latin.yaml",
        "environments/tabs.yaml",
    ]


def test_json_output(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sha = commit_files(repo, {**VALID_FILES, "environments/prod.yaml": BROKEN_PROD})

    done = run_validate(
        "--repo", str(repo), "--data-dir", str(tmp_path / "data"), "--output", "json", cwd=tmp_path
    )

    assert done.returncode == 1
    assert_no_traceback(done)
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert report["revision"] == sha
    assert len(report["problems"]) == 1
    [problem] = report["problems"]
    assert set(problem) >= {"path", "line", "message"}
    assert isinstance(problem["line"], int)
    printed = f"{problem['path']}:{problem['line']}: {problem['message']}"
    assert printed.startswith(BROKEN_PROBLEM)


def test_json_output_of_a_valid_repo(valid_repo: Path, tmp_path: Path) -> None:
    done = run_validate(
        "--repo",
        str(valid_repo),
        "--data-dir",
        str(tmp_path / "data"),
        "--output",
        "json",
        cwd=tmp_path,
    )

    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["valid"] is True
    assert report["problems"] == []


def test_uncommitted_edits_are_not_seen_and_committed_ones_are(
    valid_repo: Path, tmp_path: Path
) -> None:
    (valid_repo / "environments" / "prod.yaml").write_text(BROKEN_PROD, encoding="utf-8")
    (valid_repo / "environments" / "qa.yaml").write_text("not: [valid", encoding="utf-8")
    args = ("--repo", str(valid_repo), "--data-dir", str(tmp_path / "data"))

    before = run_validate(*args, cwd=tmp_path)
    assert before.returncode == 0, before.stdout + before.stderr
    assert before.stdout == ""

    commit_files(valid_repo, {}, message="commit the broken prod")
    (valid_repo / "environments" / "qa.yaml").unlink()
    commit_files(valid_repo, {}, message="drop qa")

    after = run_validate(*args, cwd=tmp_path)
    assert after.returncode == 1
    assert after.stdout.splitlines() == [_line_starting(after.stdout, BROKEN_PROBLEM)]


def test_revision_validates_an_older_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    good = commit_files(repo, VALID_FILES, message="good")
    bad = commit_files(repo, {"environments/prod.yaml": BROKEN_PROD}, message="bad")
    args = ("--repo", str(repo), "--data-dir", str(tmp_path / "data"))

    head = run_validate(*args, cwd=tmp_path)
    assert head.returncode == 1
    assert bad[:12] in head.stderr

    older = run_validate(*args, "--revision", good, cwd=tmp_path)
    assert older.returncode == 0, older.stdout + older.stderr
    assert good[:12] in older.stderr

    short = run_validate(*args, "--revision", good[:8], cwd=tmp_path)
    assert short.returncode == 0, short.stdout + short.stderr

    unknown = run_validate(*args, "--revision", "no-such-branch", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no-such-branch" in unknown.stderr
    assert_no_traceback(unknown)


def test_a_folder_that_is_not_a_git_repo(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "gitopsd.yaml").write_text("kind: Settings\n", encoding="utf-8")

    done = run_validate("--repo", str(folder), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)

    assert done.returncode == 1
    assert "not a git repository" in done.stderr
    assert done.stdout == ""
    assert_no_traceback(done)


def test_a_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    done = run_validate("--repo", str(missing), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)

    assert done.returncode == 1
    assert str(missing) in done.stderr
    assert_no_traceback(done)


def test_an_error_is_json_too_when_json_is_asked_for(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    done = run_validate("--repo", str(missing), "--output", "json", cwd=tmp_path)

    assert done.returncode == 1
    assert json.loads(done.stdout) == {"error": f"{missing}: no such directory"}
    assert_no_traceback(done)


def test_repo_given_as_a_file_url_is_cloned_under_the_data_dir(
    valid_repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"

    done = run_validate("--repo", valid_repo.as_uri(), "--data-dir", str(data), cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.startswith("valid:")
    assert any((data / "mirrors").iterdir()), "no mirror under the data dir"

    commit_files(valid_repo, {"environments/prod.yaml": BROKEN_PROD}, message="bad")
    again = run_validate("--repo", valid_repo.as_uri(), "--data-dir", str(data), cwd=tmp_path)
    assert again.returncode == 1, "the mirror was not fetched again"
    assert again.stdout.startswith(BROKEN_PROBLEM)


def test_repo_from_the_gitopsd_repo_variable(valid_repo: Path, tmp_path: Path) -> None:
    env = {"GITOPSD_REPO": str(valid_repo), "GITOPSD_DATA_DIR": str(tmp_path / "data")}

    done = run_validate(cwd=tmp_path, env=env)  # tmp_path itself is not a git repo

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.startswith("valid:")


def _problem(line: str) -> Problem:
    path, number, message = line.split(":", 2)
    return Problem(path, int(number), message.removeprefix(" "))


def _line_starting(text: str, prefix: str) -> str:
    return next((line for line in text.splitlines() if line.startswith(prefix)), prefix)


def test_a_file_named_in_bytes_that_are_not_utf8_is_named_in_problems_any_output_can_carry(
    tmp_path: Path,
) -> None:
    """git names files in bytes: a broken manifest named in Latin-1 is reported, its odd
    byte written as `\\xe9`, on a terminal that takes UTF-8 only (a user's en_US.UTF-8
    locale; PYTHONIOENCODING here) and in JSON any parser reads (no lone surrogates)."""
    repo = tmp_path / "repo"
    latin = os.fsdecode(b"environments/d\xe9v.yaml")
    commit_files(repo, {**VALID_FILES, latin: "spec: [unclosed\n"})
    args = ("--repo", str(repo), "--data-dir", str(tmp_path / "data"))
    strict = {"PYTHONIOENCODING": "utf-8:strict"}

    done = run_validate(*args, cwd=tmp_path, env=strict)
    as_json = run_validate(*args, "--output", "json", cwd=tmp_path, env=strict)

    assert done.returncode == as_json.returncode == 1, done.stderr + as_json.stderr
    assert_no_traceback(done)
    assert done.stdout.startswith("environments/d\\xe9v.yaml:2: invalid YAML"), done.stdout
    [problem] = json.loads(as_json.stdout)["problems"]
    assert problem["path"] == "environments/d\\xe9v.yaml"
    assert "\\ud" not in as_json.stdout  # no escaped lone surrogate in the JSON text
