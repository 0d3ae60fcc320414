"""The `gitopsd` command line: one click command per row of SPEC section 5.

Commands parse flags, call the runtime, print text or JSON and choose the exit code; they hold
no logic of their own. Every flag has a `GITOPSD_*` environment variable.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from gitopsd import __version__
from gitopsd.adapters.gitrepo import GitSource, GitSourceError
from gitopsd.cli import graphs
from gitopsd.engine import selection
from gitopsd.engine.graph import DependencyCycleError
from gitopsd.runtime import revisions
from gitopsd.runtime.revisions import LoadedRevision

Command = TypeVar("Command", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1


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
        try:
            return command(context, **kwargs)
        except GitSourceError as error:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitopsd")
def cli() -> None:
    """GitOps orchestrator for infrastructure in layers."""


@cli.command()
@common_options
@click.option("--revision", default=None, help="Commit to validate (default: the branch head).")
def validate(context: Context, revision: str | None) -> None:
    """Load and check every manifest at the branch head."""
    with context.open_source() as source:
        loaded = revisions.load(source, revision)
    if context.output == "json":
        problems = [{"path": p.path, "line": p.line, "message": p.message} for p in loaded.problems]
        click.echo(
            json.dumps(
                {"revision": loaded.revision, "valid": loaded.is_valid, "problems": problems},
                indent=2,
            )
        )
    else:
        for problem in loaded.problems:
            click.echo(str(problem))
        click.echo(_validation_summary(loaded), err=True)
    sys.exit(EXIT_OK if loaded.is_valid else EXIT_FAILED)


def _validation_summary(loaded: LoadedRevision) -> str:
    repository = loaded.repository
    if loaded.is_valid:
        return (
            f"valid: {len(repository.environments)} environments, "
            f"{len(repository.components)} components at {loaded.revision[:12]}"
        )
    files = len({problem.path for problem in loaded.problems})
    found = f"{plural(len(loaded.problems), 'problem')} in {plural(files, 'file')}"
    return f"invalid: {found} at {loaded.revision[:12]}"


@cli.command()
@common_options
@click.option("--env", "environment", required=True, help="Environment name.")
@click.option(
    "--format",
    "view",
    type=click.Choice(sorted(graphs.RENDERERS)),
    default=None,
    help="Graph format (default: text, or json with --output json).",
)
@click.option("--revision", default=None, help="Commit to read (default: the branch head).")
def graph(context: Context, environment: str, view: str | None, revision: str | None) -> None:
    """The dependency order for an environment."""
    loaded = load_valid(context, revision)
    if environment not in loaded.repository.environments:
        known = ", ".join(sorted(loaded.repository.environments)) or "none"
        fail(
            f"unknown environment {environment!r} (environments: {known})",
            as_json=context.output == "json",
        )
    try:
        chosen = selection.select(loaded.repository, environment)
    except DependencyCycleError as error:  # validation reports cycles; kept for safety
        fail(str(error))
        return
    renderer = graphs.RENDERERS[view or ("json" if context.output == "json" else "text")]
    click.echo(renderer(chosen))


@cli.command()
def schema() -> None:
    """The JSON Schema (draft 2020-12) of the Component and Environment kinds."""
    from gitopsd.model.schema import manifest_schema  # imported here: only this command needs it

    click.echo(json.dumps(manifest_schema(), indent=2))


def load_valid(context: Context, revision: str | None) -> LoadedRevision:
    """Load a revision and stop with its problems (exit 1) unless it is valid."""
    with context.open_source() as source:
        loaded = revisions.load(source, revision)
    if not loaded.is_valid:
        for problem in loaded.problems:
            click.echo(str(problem), err=True)
        found = plural(len(loaded.problems), "problem")
        fail(
            f"{found} in the manifests at {loaded.revision[:12]}", as_json=context.output == "json"
        )
    return loaded


def main() -> None:
    """Console-script entry point."""
    cli()
