"""The tests take the example from the project's HEAD commit, never from the working tree:
`make test` passes whatever a user did to the checkout's example (edited and not committed,
deleted, half a walkthrough)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.gitrepos import PROJECT, commit_example, example_files, export_example, git


@pytest.fixture
def edited_clone(tmp_path: Path) -> Path:
    """A clone of the project whose working tree a user changed: dev's node_count edited,
    the smoke gate deleted, a stray file added; nothing committed."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
    dev = clone / "environments" / "dev.yaml"
    dev.write_text(dev.read_text().replace("node_count: 1", "node_count: 7"))
    (clone / "environments" / "checks" / "smoke.sh").unlink()
    (clone / "environments" / "qa.yaml").write_text("not: [a manifest")
    return clone


def committed(clone: Path, path: str) -> bytes:
    found = subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=clone, check=True, capture_output=True
    )
    return found.stdout


def test_commit_example_takes_the_committed_example(edited_clone: Path, tmp_path: Path) -> None:
    repo = commit_example(tmp_path / "repo", project=edited_clone)
    dev = (repo / "environments" / "dev.yaml").read_bytes()
    assert dev == committed(edited_clone, "environments/dev.yaml")
    assert b"node_count: 7" not in dev
    assert not (repo / "environments" / "qa.yaml").exists()
    smoke = repo / "environments" / "checks" / "smoke.sh"
    assert os.access(smoke, os.X_OK)  # modes come along: the gate still runs
    assert git(repo, "status", "--porcelain") == ""  # all of it committed


def test_the_loader_and_driver_checkouts_read_the_committed_files(
    edited_clone: Path, tmp_path: Path
) -> None:
    files = example_files(project=edited_clone)
    assert "environments/qa.yaml" not in files
    assert files["environments/dev.yaml"] == committed(edited_clone, "environments/dev.yaml")
    assert "environments/checks/smoke.sh" in files
    checkout = export_example(tmp_path / "checkout", "components", project=edited_clone)
    assert sorted(path.name for path in checkout.iterdir()) == ["components"]
    assert (checkout / "components" / "_lib" / "fakeinfra.py").is_file()
