"""`gitopsd status` and `gitopsd history`: what is deployed where, and who did what when."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator

import click

from gitopsd.adapters.gitrepo import GitSource
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
    with _source(context) as source, context.store(read_only=True) as store:
        repository = _head(source)
        manifests_at = _manifests_at(source) if source is not None else None
        authors = reports.commit_authors(source.author) if source is not None else None
        report = reports.status_report(
            store, repository, environment=environment, manifests_at=manifests_at, authors=authors
        )
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


@contextlib.contextmanager
def _source(context: Context) -> Iterator[GitSource | None]:
    """The git source, or None when it cannot be opened: status works from the store alone
    (from a host with only the shared store, or while the repository is broken), and says
    so, since the holds, approvals and waits it shows then lack the manifests' rules."""
    try:
        source = context.open_source()
    except GitSourceError as error:
        _warn_unread(error)
        yield None
        return
    with source:
        yield source


def _head(source: GitSource | None) -> Repository | None:
    """The manifests at the branch head, when they load (else said, as for `_source`)."""
    if source is None:
        return None
    try:
        return revisions.load(source).repository
    except GitSourceError as error:
        _warn_unread(error)
        return None


def _warn_unread(error: GitSourceError) -> None:
    """One line on stderr, so that stdout (the table, or JSON) stays what it always is."""
    click.echo(f"warning: cannot read the repository ({error}): the stored state only", err=True)


def _manifests_at(source: GitSource) -> reports.ManifestsAt:
    """A revision's manifests, for the rules an environment is held to at the revision it
    is at; None when they do not load or are not valid (admission's reading). Each revision
    is loaded once: environments at the same revision are the usual case."""

    @functools.cache
    def at(revision: str) -> Repository | None:
        try:
            loaded = revisions.load(source, revision)
        except GitSourceError:
            return None
        return loaded.repository if loaded.is_valid else None

    return at
