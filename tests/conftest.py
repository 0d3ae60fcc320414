"""Shared fixtures: real git repositories in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.github.conftest import fake_github  # noqa: F401 - the fixture, for every test
from tests.gitrepos import commit_files

pytest_plugins = ("tests.postgres",)  # postgres_server, postgres_url

CommitFiles = Callable[..., str]


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def commit(repo_path: Path) -> CommitFiles:
    """`commit({"path": "text"}, message=..., replace=...)` commits into the test's repo."""

    def _commit(files: Mapping[str, str | bytes], **options: object) -> str:
        return commit_files(repo_path, files, **options)  # type: ignore[arg-type]

    return _commit
