"""`gitopsd plan | apply | destroy | runs | cancel`: runs in the foreground, and their records.

Exit codes are SPEC section 5's: plan 0 no changes / 2 changes / 1 error; apply 0 / 1 failed /
3 waiting for approvals or a window; destroy 0 / 1 failed; cancel 1 when there is no such
unfinished run.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from gitopsd.cli import progress, render
from gitopsd.cli.context import EXIT_CHANGES, EXIT_FAILED, EXIT_OK, Context, common_options, fail
from gitopsd.cli.stopping import stopping
from gitopsd.model.state import Run, RunStatus, Step
from gitopsd.runtime import reports

if TYPE_CHECKING:
    from gitopsd.runtime.promoting import Decision

components_option = click.option(
    "--components", default=None, help="Comma-separated component names (default: all)."
)
revision_option = click.option("--revision", default=None, help="Commit (default: branch head).")
environment_option = click.option("--env", "environment", required=True, help="Environment.")
EXIT_WAITING = 3  # apply, promote: approvals or a change window hold the environment


def names(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def finish_run(context: Context, run: Run, steps: list[Step]) -> None:
    """Print a finished apply or destroy and exit 0 if it succeeded, 1 otherwise."""
    click.echo(
        json.dumps(reports.run_report(run, steps), indent=2)
        if context.as_json
        else render.run(run, steps)
    )
    sys.exit(EXIT_OK if run.status is RunStatus.SUCCEEDED else EXIT_FAILED)


@click.command()
@common_options
@environment_option
@components_option
@revision_option
def plan(context: Context, environment: str, components: str | None, revision: str | None) -> None:
    """What an apply would change, as the drivers' plan says it."""
    with context.workspace() as workspace, stopping(workspace):
        run, planned = workspace.plan(environment, revision=revision, components=names(components))
    if context.as_json:
        click.echo(
            json.dumps(
                {"run": run.id, "revision": run.revision, "components": [vars(p) for p in planned]},
                indent=2,
            )
        )
    else:
        click.echo(render.planned(run, planned))
    if any(p.changes is None for p in planned):
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_CHANGES if any(p.changes for p in planned) else EXIT_OK)


@click.command()
@common_options
@environment_option
@components_option
@revision_option
@click.option("--dry-run", is_flag=True, help="Print the ordered plan; change nothing.")
@click.option("--force", is_flag=True, help="Apply even inside a deny window (recorded).")
def apply(
    context: Context,
    environment: str,
    components: str | None,
    revision: str | None,
    dry_run: bool,
    force: bool,
) -> None:
    """One run, in the foreground."""
    from gitopsd.runtime import promoting  # the run machinery loads only for this command

    with context.workspace() as workspace, stopping(workspace):
        if dry_run:
            decided = workspace.dry_run(
                environment, revision=revision, components=names(components)
            )
            click.echo(render.dry_run(decided, as_json=context.as_json))
            sys.exit(EXIT_OK)
        admitted = promoting.admit(workspace, environment, revision=revision, forced=force)
        if admitted.wait is not promoting.Wait.READY:
            _not_admitted(context, environment, admitted, asked=revision)
        with progress.shown():
            run = workspace.apply(
                environment,
                revision=admitted.revision,
                components=names(components),
                forced=admitted.forced,
            )
        steps = workspace.store.list_steps(run.id)
    finish_run(context, run, steps)


def _not_admitted(
    context: Context, environment: str, decision: Decision, *, asked: str | None
) -> None:
    """Exit 3 while approvals or a window hold the environment; 0 when it has nothing to
    take from its upstream; 1 when the asked revision is not one it may take."""
    nothing = decision.wait.value == "nothing"
    if nothing and asked is not None:
        fail(f"{environment}: {decision.reason}", as_json=context.as_json)
    click.echo(f"{environment}: {decision.reason}")
    sys.exit(EXIT_OK if nothing else EXIT_WAITING)


@click.command()
@common_options
@environment_option
@components_option
def destroy(context: Context, environment: str, components: str | None) -> None:
    """Destroy an environment's components, dependents first."""
    with context.workspace() as workspace, stopping(workspace):
        with progress.shown():
            run = workspace.destroy(environment, components=names(components))
        steps = workspace.store.list_steps(run.id)
    finish_run(context, run, steps)


@click.command()
@common_options
@click.option("--env", "environment", default=None, help="Only this environment.")
@click.option("--limit", default=10, show_default=True, help="How many runs.")
@click.option("--run", "run_id", default=None, help="Show one run with its steps' output.")
def runs(context: Context, environment: str | None, limit: int, run_id: str | None) -> None:
    """Runs and their steps, newest first."""
    with context.store() as store:
        if run_id is not None:
            found = store.get_run(run_id)
            if found is None:
                fail(f"no run {run_id!r}", as_json=context.as_json)
                return
            listed = [found]
        else:
            listed = store.list_runs(environment, limit=limit)
        detailed = [(run, store.list_steps(run.id)) for run in listed]
    if context.as_json:
        click.echo(json.dumps({"runs": [reports.run_report(r, s) for r, s in detailed]}, indent=2))
    else:
        click.echo(
            "\n\n".join(render.run(r, s, verbose=run_id is not None) for r, s in detailed)
            or "no runs"
        )


@click.command()
@common_options
@click.argument("run_id")
def cancel(context: Context, run_id: str) -> None:
    """Stop a run at its next step boundary, terminating running drivers."""
    with context.store() as store:
        run = store.get_run(run_id)
        if run is None:
            fail(f"no run {run_id!r}", as_json=context.as_json)
            return
        if run.status.is_finished:
            fail(f"run {run_id} already {run.status.value}", as_json=context.as_json)
            return
        store.save_run(run.model_copy(update={"cancel_requested": True}))
    message = f"cancel requested for run {run_id}; its drivers are being stopped"
    click.echo(
        json.dumps({"run": run_id, "cancel_requested": True}) if context.as_json else message
    )
