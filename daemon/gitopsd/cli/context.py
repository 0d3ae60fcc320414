"""What every command shares: the common flags, errors, and opening the workspace they name.

SPEC section 5: every command takes --repo, --branch, --state and --output, each with a
GITOPSD_* environment variable; `--data-dir` (GITOPSD_DATA_DIR) says where state, checkouts
and work files live.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitopsd.adapters import data_folder
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.errors import GitopsdError
from gitopsd.runtime import revisions

if TYPE_CHECKING:
    from gitopsd.engine.ports import StateStore
    from gitopsd.runtime.workspace import Workspace

Command = TypeVar("Command", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CHANGES = 2  # plan, diff, drift: something differs


@dataclass(frozen=True)
class Context:
    """The flags every command takes (SPEC section 5)."""

    repo: str
    branch: str | None
    state: str
    output: str
    data_dir: Path

    def open_source(self) -> GitSource:
        return revisions.open_source(self.repo, branch=self.branch, data_dir=self.data_dir)

    @property
    def as_json(self) -> bool:
        return self.output == "json"

    @contextlib.contextmanager
    def store(self) -> Iterator[StateStore]:
        """Only the state store, for commands that read or flag runs."""
        from gitopsd.runtime import stores  # the run machinery loads only for commands using it

        store = stores.open_store(self.state, base=Path.cwd())
        try:
            yield stores.sealed(store, data_dir=self.data_dir, key=_key())
        finally:
            store.close()

    @contextlib.contextmanager
    def workspace(self) -> Iterator[Workspace]:
        """The repository, state store and data folder these flags name, closed afterwards."""
        from gitopsd.runtime import stores

        with self.open_source() as source:
            store = stores.open_store(self.state, base=Path.cwd())
            try:
                yield stores.workspace(source, store, data_dir=self.data_dir, key=_key())
            finally:
                store.close()


def _key() -> str | None:
    """GITOPSD_ENCRYPTION_KEY: read here, never a flag, so the key stays off command lines."""
    return os.environ.get("GITOPSD_ENCRYPTION_KEY")


def common_options(command: Command) -> Command:
    """Add --repo, --branch, --state, --output (and their GITOPSD_* variables) to a command."""

    @click.option(
        "--repo",
        envvar="GITOPSD_REPO",
        default=".",
        show_default=True,
        help="Path or URL of the GitOps repository.",
    )
    @click.option(
        "--branch",
        envvar="GITOPSD_BRANCH",
        default=None,
        help="Branch to track (default: the repository's current branch).",
    )
    @click.option(
        "--state",
        envvar="GITOPSD_STATE",
        default="sqlite:///.gitopsd/state.db",
        show_default=True,
        help="State store URL.",
    )
    @click.option(
        "--output",
        envvar="GITOPSD_OUTPUT",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )
    @click.option(
        "--data-dir",
        envvar="GITOPSD_DATA_DIR",
        default=".gitopsd",
        show_default=True,
        type=click.Path(path_type=Path),
        help="Folder for state, checkouts and reports.",
    )
    @functools.wraps(command)
    def wrapper(
        repo: str, branch: str | None, state: str, output: str, data_dir: Path, **kwargs: Any
    ) -> Any:
        context = Context(repo, branch, state, output, data_dir)
        data_folder.tighten(data_dir)
        try:
            return command(context, **kwargs)
        except GitopsdError as error:
            fail(str(error), as_json=context.output == "json")

    return wrapper  # type: ignore[return-value]


def fail(message: str, *, as_json: bool = False) -> None:
    """Stop with exit code 1; scripts asking for JSON get the error as JSON on stdout too."""
    if as_json:
        click.echo(json.dumps({"error": message}))
    click.echo(f"gitopsd: error: {message}", err=True)
    sys.exit(EXIT_FAILED)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
