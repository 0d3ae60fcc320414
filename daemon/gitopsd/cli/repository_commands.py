"""`gitopsd validate | graph | schema`: what the manifests of a revision say, without state."""

from __future__ import annotations

import json
import sys

import click

from gitopsd.adapters.driver_registry import installed_drivers
from gitopsd.cli import graphs
from gitopsd.cli.context import (
    EXIT_FAILED,
    EXIT_OK,
    REVISION,
    Context,
    common_options,
    fail,
    plural,
)
from gitopsd.engine import selection
from gitopsd.engine.drivers import settings_of
from gitopsd.engine.graph import DependencyCycleError
from gitopsd.errors import GitopsdError
from gitopsd.model import schema as schemas
from gitopsd.runtime.runs import revisions
from gitopsd.runtime.runs.revisions import LoadedRevision


@click.command()
@common_options
@click.option(
    "--revision", type=REVISION, default=None, help="Commit to validate (default: the branch head)."
)
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
        environments = plural(len(repository.environments), "environment")
        components = plural(len(repository.components), "component")
        return f"valid: {environments}, {components} at {loaded.revision[:12]}"
    files = len({problem.path for problem in loaded.problems})
    found = f"{plural(len(loaded.problems), 'problem')} in {plural(files, 'file')}"
    return f"invalid: {found} at {loaded.revision[:12]}"


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="Environment name.")
@click.option(
    "--format",
    "view",
    type=click.Choice(sorted(graphs.RENDERERS)),
    default=None,
    help="Graph format (default: text, or json with --output json).",
)
@click.option(
    "--revision", type=REVISION, default=None, help="Commit to read (default: the branch head)."
)
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


@click.command()
@click.option(
    "--kind",
    type=click.Choice(["component", "environment", "config"]),
    default=None,
    help="One kind's schema (config: gitopsd.yaml), for an editor's modeline"
    " [default: Component or Environment in one schema].",
)
def schema(kind: str | None) -> None:
    """The JSON Schema (draft 2020-12) of the manifest kinds."""

    try:
        driver_types = settings_of(installed_drivers())
    except GitopsdError as error:  # a driver plugin that cannot be loaded
        fail(str(error))
        return
    if kind is None:
        document = schemas.manifest_schema(driver_types)
    else:
        document = schemas.kind_schema(kind, driver_types)
    click.echo(json.dumps(document, indent=2))


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
