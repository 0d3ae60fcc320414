"""`gitopsd plan | apply | destroy | runs | cancel`: runs in the foreground, and their records.

Exit codes are SPEC section 5's: plan 0 no changes / 2 changes / 1 error; apply 0 / 1 failed /
3 waiting for approvals or a window; destroy 0 / 1 failed; cancel 1 when there is no such
unfinished run.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import click

from gitopsd.adapters.clock import SystemClock
from gitopsd.cli import progress, remote, render
from gitopsd.cli.context import (
    EXIT_CHANGES,
    EXIT_FAILED,
    EXIT_OK,
    POSITIVE_INTEGER,
    REVISION,
    Context,
    common_options,
    fail,
    trust_option,
)
from gitopsd.cli.stopping import stopping
from gitopsd.engine import selection
from gitopsd.engine.admitting import Wait
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import (
    Request,
    RequestKind,
    RequestStatus,
    Run,
    RunAction,
    RunStatus,
    SavedPlan,
    Step,
)
from gitopsd.runtime.promotion import admission, saved_plans
from gitopsd.runtime.promotion.admission import Admission
from gitopsd.runtime.records import reports
from gitopsd.runtime.runs.plan_run import PlannedComponent
from gitopsd.runtime.runs.workspace import run_id_time
from gitopsd.runtime.service import cancelling


def component_names(
    _context: click.Context, _parameter: click.Parameter, value: str | None
) -> list[str] | None:
    """`--components A,B` as a list; given but naming none (`--components ,`) is a usage
    error, never "all": a destroy or apply of everything by a slip of the keyboard."""
    if value is None:
        return None
    found = [name.strip() for name in value.split(",") if name.strip()]
    if not found:
        raise click.BadParameter("names no component (leave it out to mean all)")
    if twice := selection.named_twice(found):
        raise click.BadParameter(f"names {', '.join(twice)} more than once")
    return found


components_option = click.option(
    "--components",
    default=None,
    callback=component_names,
    help="Comma-separated component names (default: all).",
)
revision_option = click.option(
    "--revision", type=REVISION, default=None, help="Commit (default: branch head)."
)
environment_option = click.option("--env", "environment", required=True, help="Environment.")
EXIT_WAITING = 3  # apply, promote: approvals or a change window hold the environment


@contextlib.contextmanager
def resumed_said(store: StateStore, environment: str) -> Iterator[None]:
    """Say on stderr which runs a stopped gitopsd left that the command inside resumed
    first, and how they ended: an apply that first finished a killed destroy printed only
    its own run, and the destroy was in the history alone."""
    left = [r.id for r in store.unfinished_runs(environment) if r.action is not RunAction.PLAN]
    try:
        yield
    finally:
        for run_id in left:
            run = store.get_run(run_id)
            if run is not None and run.finished_at is not None:
                ended = f"{run.status.value} ({run.error})" if run.error else run.status.value
                click.echo(f"resumed {run.action.value} run {run.id} that a stopped gitopsd "
                           f"left: {ended}", err=True)  # fmt: skip


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
@trust_option
@environment_option
@components_option
@revision_option
@click.option("--save", is_flag=True, help="Record the plan, to apply it later with --plan.")
def plan(
    context: Context,
    environment: str,
    components: list[str] | None,
    revision: str | None,
    save: bool,
) -> None:
    """What an apply would change, as the drivers' plan says it."""

    saved: SavedPlan | None = None
    with context.workspace() as workspace, stopping(workspace):
        admitted = admission.admit(
            workspace, environment, action=RequestKind.PLAN, revision=revision
        )
        if admitted.wait is not admission.Wait.READY:
            fail(f"{environment}: {admitted.reason}", as_json=context.as_json)
        if save:
            run, planned, saved = saved_plans.save(
                workspace, environment, revision=revision, components=components
            )
        else:
            run, planned = workspace.plan(environment, revision=revision, components=components)
    _print_plan(context, run, planned, saved, save=save)
    if any(p.changes is None for p in planned):
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_CHANGES if any(p.changes for p in planned) else EXIT_OK)


def _print_plan(
    context: Context,
    run: Run,
    planned: list[PlannedComponent],
    saved: SavedPlan | None,
    *,
    save: bool,
) -> None:
    """The plan; with --save, the saved plan's id (null in JSON when a failure kept it)."""
    if context.as_json:
        shown: dict[str, Any] = {
            "run": run.id,
            "revision": run.revision,
            "components": [vars(p) for p in planned],
        }
        if save:
            shown["plan"] = saved.id if saved else None
        click.echo(json.dumps(shown, indent=2))
        return
    click.echo(render.planned(run, planned))
    if saved is not None:
        click.echo(
            f"saved plan {saved.id}; apply it with: "
            f"gitopsd apply --env {saved.environment} --plan {saved.id}"
        )
    elif save:
        click.echo("plan not saved: a driver's plan failed")


@click.command()
@common_options
@trust_option
@environment_option
@components_option
@revision_option
@click.option("--dry-run", is_flag=True, help="Print the ordered plan; change nothing.")
@click.option("--force", is_flag=True, help="Apply even inside a deny window (recorded).")
@click.option("--plan", "plan_id", default=None, help="Apply exactly this saved plan.")
def apply(
    context: Context,
    environment: str,
    components: list[str] | None,
    revision: str | None,
    dry_run: bool,
    force: bool,
    plan_id: str | None,
) -> None:
    """One run, in the foreground."""

    if plan_id is not None:
        if components or revision or dry_run:
            fail("--plan applies the plan's own revision and components", as_json=context.as_json)
        _apply_plan(context, environment, plan_id, force=force)
    with context.workspace() as workspace, stopping(workspace):
        if dry_run:
            decided = workspace.preview(environment, revision=revision, components=components)
            click.echo(render.preview(decided, as_json=context.as_json))
            sys.exit(EXIT_OK)
        workspace.prepare(revision)  # exported while admission parses the manifests
        admitted = admission.admit(workspace, environment, revision=revision, forced=force)
        if admitted.wait is not admission.Wait.READY:
            _not_admitted(context, environment, admitted, asked=revision)
        with progress.shown(), resumed_said(workspace.store, environment):
            run = workspace.apply(
                environment,
                revision=admitted.revision,
                components=components,
                forced=admitted.forced,
            )
        steps = workspace.store.list_steps(run.id)
    finish_run(context, run, steps)


def _apply_plan(context: Context, environment: str, plan_id: str, *, force: bool) -> None:
    """Apply a saved plan if it is still what the environment would do; exit 1 if stale."""

    with context.workspace() as workspace, stopping(workspace):
        plan = saved_plans.load(workspace, environment, plan_id)
        admitted = admission.admit(workspace, environment, revision=plan.revision, forced=force)
        if admitted.wait is not admission.Wait.READY:
            _not_admitted(context, environment, admitted, asked=plan.revision)
        with progress.shown(), resumed_said(workspace.store, environment):
            run = saved_plans.apply(workspace, plan, forced=admitted.forced)
        steps = workspace.store.list_steps(run.id) if run is not None else []
    if run is None:
        done = {"plan": plan.id, "run": None, "status": "nothing to change"}
        message = f"plan {plan.id} of {environment}: nothing to change"
        click.echo(json.dumps(done) if context.as_json else message)
        sys.exit(EXIT_OK)
    finish_run(context, run, steps)


def _not_admitted(
    context: Context, environment: str, decision: Admission, *, asked: str | None
) -> None:
    """Exit 3 while approvals, a window or the soak hold the environment; 0 when it has
    nothing to take from its upstream; 1 when admission refuses (the asked revision is not
    one it may take, or its commit is not signed by a trusted signer)."""
    nothing = decision.wait is Wait.NOTHING
    refused = decision.wait in (Wait.REFUSED, Wait.BLOCKED)
    if refused or (nothing and asked is not None):
        fail(f"{environment}: {decision.reason}", as_json=context.as_json)
    click.echo(f"{environment}: {decision.reason}")
    sys.exit(EXIT_OK if nothing else EXIT_WAITING)


@click.command()
@common_options
@environment_option
@components_option
@click.option("--force", is_flag=True, help="Destroy even inside a deny window (recorded).")
def destroy(context: Context, environment: str, components: list[str] | None, force: bool) -> None:
    """Destroy an environment's components, dependents first; a window holds it (exit 1)
    unless --force."""

    with context.workspace() as workspace, stopping(workspace):
        admitted = admission.admit(workspace, environment, action=RequestKind.DESTROY, forced=force)
        if admitted.wait is not admission.Wait.READY:
            fail(f"{environment}: {admitted.reason}", as_json=context.as_json)
        with progress.shown(), resumed_said(workspace.store, environment):
            run = workspace.destroy(environment, components=components)
        steps = workspace.store.list_steps(run.id)
    finish_run(context, run, steps)


@click.command()
@common_options
@click.option("--env", "environment", default=None, help="Only this environment.")
@click.option(
    "--limit", default=10, show_default=True, type=POSITIVE_INTEGER, help="How many runs."
)
@click.option("--run", "run_id", default=None, help="Show one run with its steps' output.")
@click.option(
    "--before", default=None, metavar="RUN_ID", help="The next page: runs older than this one."
)
@click.option(
    "--status",
    type=click.Choice([status.value for status in RunStatus]),
    default=None,
    help="Only runs with this status (open requests are not shown then).",
)
@click.option(
    "--action",
    type=click.Choice([action.value for action in RunAction]),
    default=None,
    help="Only runs of this action (open requests are not shown then).",
)
def runs(
    context: Context,
    environment: str | None,
    limit: int,
    run_id: str | None,
    before: str | None,
    status: str | None,
    action: str | None,
) -> None:
    """Requests not run yet (queued, waiting, retrying with their last error), then runs and
    their steps, newest first."""
    chosen = Chosen(environment, status, action)
    with context.store(read_only=True) as store:
        listed, requests = _selected(context, store, chosen, limit, run_id, before)
        detailed = [(run, store.list_steps(run.id)) for run in listed]
    if context.as_json:
        shown = [reports.request_report(r) for r in requests]
        shown += [reports.run_report(r, s) for r, s in detailed]
        click.echo(json.dumps({"runs": shown}, indent=2))
    else:
        texts = [render.request(r) for r in requests]
        texts += [render.run(r, s, verbose=run_id is not None, timed=True) for r, s in detailed]
        if run_id is None and len(listed) == limit:
            texts.append(f"(older runs: --before {listed[-1].id})")
        click.echo("\n\n".join(texts) or "no runs")


@dataclass(frozen=True)
class Chosen:
    """Which runs `runs` lists: the filters of the store's `list_runs`."""

    environment: str | None
    status: str | None
    action: str | None

    @property
    def filtered(self) -> bool:
        """Filtered by what only runs have: open requests are not shown."""
        return self.status is not None or self.action is not None

    def runs(
        self, store: StateStore, *, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[Run]:
        """The newest runs chosen, or those after position `before` (created_at, id)."""
        return store.list_runs(
            self.environment, limit=limit, before=before, status=self.status, action=self.action
        )


def _selected(
    context: Context,
    store: StateStore,
    chosen: Chosen,
    limit: int,
    run_id: str | None,
    before: str | None,
) -> tuple[list[Run], list[Request]]:
    """The runs and requests `runs` shows: one, a page after `before`, or the newest."""
    if before is not None:
        return _older_runs(context, store, chosen, limit=limit, before=before), []
    if run_id is not None:
        found = store.get_run(run_id)
        request = store.get_request(run_id) if found is None else None
        if found is None and request is None:
            fail(f"no run {run_id!r}", as_json=context.as_json)
        return ([found] if found else []), ([request] if request else [])
    listed = chosen.runs(store, limit=limit)
    if chosen.filtered:
        return listed, []
    known = {run.id for run in listed}
    opened = store.list_requests(chosen.environment, open_only=True)
    return listed, [
        r for r in opened if r.id not in known and r.status is not RequestStatus.RUNNING
    ]


def _older_runs(
    context: Context, store: StateStore, chosen: Chosen, *, limit: int, before: str
) -> list[Run]:
    """The page of runs after run `before` (the last one of the previous page). A run the
    history no longer keeps (pruned since that page) still names its second: the runs made
    before it."""
    last = store.get_run(before)
    if last is not None:
        return chosen.runs(store, limit=limit, before=(last.created_at, last.id))
    made = run_id_time(before)
    if made is None:
        fail(f"no run {before!r}", as_json=context.as_json)
        return []
    return chosen.runs(store, limit=limit, before=(made, ""))  # no id sorts before ""


@click.command()
@common_options
@click.argument("run_id")
@remote.server_option
def cancel(context: Context, run_id: str, server: str | None) -> None:
    """Stop a run: its drivers get SIGTERM (then SIGKILL), no further step starts."""
    if server is not None:
        path = f"/api/v1/runs/{quote(run_id, safe='')}/cancel"
        answer = remote.Remote.at(server).call("POST", path)
        text = f"cancel requested for {run_id} on {server}"
        if answer.get("left_by_a_stopped_process"):
            text += ", which a stopped gitopsd left: no driver of it runs; the daemon closes it"
        remote.show({"run": run_id, **answer}, text, as_json=context.as_json)
        return
    clock = SystemClock()
    with context.store() as store:
        run = cancelling.cancel_run(store, run_id, actor="local", clock=clock)
        left = run is not None and cancelling.left_by_a_stopped_process(store, run, clock=clock)
        request = store.get_request(run_id) if run is None else None
    if request is not None and request.status.is_open:  # in the daemon's queue: only it drops it
        fail(
            f"{run_id} is a request the daemon holds ({request.status.value}), not a run yet:"
            f" cancel it through the daemon, `gitopsd cancel {run_id} --server URL`",
            as_json=context.as_json,
        )
        return
    if run is None:
        fail(f"no run {run_id!r}", as_json=context.as_json)
        return
    message = f"cancel requested for run {run_id}; its drivers are being stopped"
    if left:
        message = (
            f"cancel requested for run {run_id}, which a stopped gitopsd left: no driver of it"
            f" runs, and it is closed as cancelled when gitopsd next takes {run.environment}"
            f" (the daemon's start, or `gitopsd apply --env {run.environment}`)"
        )
    click.echo(
        json.dumps({"run": run_id, "cancel_requested": True}) if context.as_json else message
    )
