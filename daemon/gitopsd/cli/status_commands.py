"""`gitopsd status` and `gitopsd history`: what is deployed where, and who did what when."""

from __future__ import annotations

import json

import click

from gitopsd.cli import render
from gitopsd.cli.context import POSITIVE_INTEGER, Context, common_options, fail
from gitopsd.engine.loading import Repository
from gitopsd.errors import GitSourceError
from gitopsd.runtime.records import reports
from gitopsd.runtime.runs import revisions


@click.command()
@common_options
@click.option("--env", "environment", default=None, help="Only this environment.")
def status(context: Context, environment: str | None) -> None:
    """Environments, revisions, component states, pending approvals, drift."""
    repository = _repository(context)
    with context.store(read_only=True) as store:
        report = reports.status_report(store, repository, environment=environment)
        if environment is not None and not report["environments"]:
            known = ", ".join(reports.environment_names(store, repository)) or "none"
            message = f"unknown environment {environment!r} (environments: {known})"
            fail(message, as_json=context.as_json)
    click.echo(json.dumps(report, indent=2) if context.as_json else render.status(report))


@click.command()
@common_options
@click.option("--env", "environment", default=None, help="Only this environment.")
@click.option(
    "--limit", default=50, show_default=True, type=POSITIVE_INTEGER, help="How many events."
)
@click.option(
    "--before",
    default=None,
    type=POSITIVE_INTEGER,
    metavar="EVENT_ID",
    help="The next page: events older than this one.",
)
def history(context: Context, environment: str | None, limit: int, before: int | None) -> None:
    """The audit trail, newest first."""
    with context.store(read_only=True) as store:
        events = store.list_events(environment, limit=limit, before=before)
    if context.as_json:
        click.echo(json.dumps({"events": [reports.event_report(e) for e in events]}, indent=2))
    else:
        more = f"\n(older events: --before {events[-1].id})" if len(events) == limit else ""
        click.echo(render.history(events) + more)


def _repository(context: Context) -> Repository | None:
    """The manifests at the branch head, when they load; status works from the store alone."""
    try:
        with context.open_source() as source:
            loaded = revisions.load(source)
    except GitSourceError:
        return None
    return loaded.repository
