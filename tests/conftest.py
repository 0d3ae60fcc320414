"""Shared fixtures: real git repositories in tmp_path."""

from __future__ import annotations

import compileall
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.github.conftest import fake_github  # noqa: F401 - the fixture, for every test
from tests.gitrepos import PROJECT, commit_files

pytest_plugins = ("tests.postgres",)  # postgres_server, postgres_url

CommitFiles = Callable[..., str]


def pytest_configure(config: pytest.Config) -> None:
    """Compile gitopsd's modules to bytecode once, before any test starts a `gitopsd` process.

    Hundreds of tests run `python -m gitopsd`; where PYTHONDONTWRITEBYTECODE is set (as on
    the project's machines) no process ever leaves its .pyc files behind, so each one compiled
    the whole package from source again, about 0.3 s of CPU a process. compileall writes them
    whatever that variable says, and skips the files whose .pyc is up to date. Only the main
    process does it (xdist's workers have `workerinput`), before the workers start.
    """
    package = PROJECT / "daemon" / "gitopsd"
    if package.is_dir() and not hasattr(config, "workerinput"):
        compileall.compile_dir(package, quiet=1)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n N --dist loadgroup` (`make unit`), keep together the tests of a module
    that share a daemon, a browser or another fixture set up once per module or class: they
    run on one worker in their order, on the one set-up; every other test goes to whichever
    worker is free. (xdist reads the `xdist_group` marks right after this hook.)"""
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        definitions = [d for ds in fixtures.name2fixturedefs.values() for d in ds]
        if any(d.scope in ("module", "class", "package") for d in definitions):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def commit(repo_path: Path) -> CommitFiles:
    """`commit({"path": "text"}, message=..., replace=...)` commits into the test's repo."""

    def _commit(files: Mapping[str, str | bytes], **options: object) -> str:
        return commit_files(repo_path, files, **options)  # type: ignore[arg-type]

    return _commit
