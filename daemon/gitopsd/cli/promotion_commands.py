"""`gitopsd promote | approve | rollback | diff`: move verified revisions down the chain.

Exit codes are SPEC section 5's: promote 0 applied (or nothing to promote), 1 failed or
refused (the revision may not be promoted: the reason is printed), 3 waiting for approvals,
a window or the soak; approve 0 recorded, 1 refused (with the reason);
rollback 0, 1; diff 0 same, 2 differs, 1 error. With `--server URL`, promote, approve and
rollback act through a running daemon's API as the token's identity (cli.remote).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from gitopsd import answers
from gitopsd.cli import progress, remote, render
from gitopsd.cli.context import (
    EXIT_CHANGES,
    EXIT_OK,
    REVISION,
    Context,
    common_options,
    fail,
    trust_option,
)
from gitopsd.cli.run_commands import EXIT_WAITING, finish_run
from gitopsd.cli.stopping import stopping
from gitopsd.engine.approving import Person
from gitopsd.errors import ApprovalRefusedError, RemoteCallError
from gitopsd.runtime.promotion import diffing, promoting


@click.command()
@common_options
@trust_option
@click.option("--to", "environment", required=True, help="The environment to promote into.")
@click.option(
    "--revision",
    type=REVISION,
    default=None,
    help="A revision the upstream verified (default: its newest).",
)
@click.option("--force", is_flag=True, help="Promote through a change window (recorded).")
@click.option("--as", "actor", default=None, help="Who promotes, for the history [default: local].")
@remote.server_option
def promote(
    context: Context,
    environment: str,
    revision: str | None,
    force: bool,
    actor: str | None,
    server: str | None,
) -> None:
    """Promote the upstream's verified revision (or --revision) into an environment."""

    remote.refuse_declared_identity(server, **{"as": actor})
    if server is not None:
        body = {"revision": revision, "force": force} if revision else {"force": force}
        _queue_and_follow(context, server, environment, "promotions", body)
    with context.workspace() as workspace, stopping(workspace), progress.shown():
        decision, run = promoting.promote(
            workspace, environment, revision=revision, forced=force, actor=actor or "local"
        )
        steps = workspace.store.list_steps(run.id) if run is not None else []
    if run is not None:
        finish_run(context, run, steps)
    if decision.wait in (promoting.Wait.REFUSED, promoting.Wait.BLOCKED):
        fail(f"{environment}: {decision.reason}", as_json=context.as_json)
    report = {
        "environment": environment,
        "state": decision.wait.value,
        "revision": decision.revision,
        "reason": decision.reason,
        "look_again_at": decision.look_again_at.isoformat() if decision.look_again_at else None,
        "approvals": [a.approver.name for a in decision.approvals],
        "required": decision.required,
    }
    click.echo(
        json.dumps(report, indent=2) if context.as_json else f"{environment}: {decision.reason}"
    )
    sys.exit(EXIT_OK if decision.wait is promoting.Wait.NOTHING else EXIT_WAITING)


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="The environment waiting for approval.")
@click.option(
    "--revision", type=REVISION, default=None, help="The revision (default: the pending one)."
)
@click.option("--as", "name", default=None, help="Who approves (required without --server).")
@click.option("--email", default=None, help="The approver's email (checked against the author).")
@remote.server_option
def approve(
    context: Context,
    environment: str,
    revision: str | None,
    name: str | None,
    email: str | None,
    server: str | None,
) -> None:
    """Record an approval of the revision waiting to enter an environment."""

    remote.refuse_declared_identity(server, **{"as": name, "email": email})
    if server is not None:
        _approve_through(context, server, environment, revision)
    if name is None:
        raise click.UsageError("Missing option '--as' (or act through a daemon with --server).")
    with context.workspace() as workspace:
        try:
            record, missing = promoting.approve(
                workspace, environment, revision=revision, approver=Person(name, email)
            )
        except ApprovalRefusedError as refused:  # the reason, said to be a refusal
            message = f"approval refused: {refused}"
            fail(message, as_json=context.as_json, code=answers.exit_code(refused))
            return
    _approved(context, {**record.model_dump(mode="json"), "missing": missing}, environment)
    sys.exit(EXIT_OK)


@click.command()
@common_options
@trust_option
@click.option("--env", "environment", required=True, help="The environment to roll back.")
@click.option(
    "--to", "revision", type=REVISION, required=True, help="A revision it verified before."
)
@click.option("--as", "actor", default=None, help="Who rolls back [default: local].")
@remote.server_option
def rollback(
    context: Context, environment: str, revision: str, actor: str | None, server: str | None
) -> None:
    """Re-apply a revision the environment verified before."""

    remote.refuse_declared_identity(server, **{"as": actor})
    if server is not None:
        _queue_and_follow(context, server, environment, "rollbacks", {"revision": revision})
    with context.workspace() as workspace, stopping(workspace), progress.shown():
        run, suspended = promoting.roll_back(
            workspace, environment, to=revision, actor=actor or "local"
        )
        steps = workspace.store.list_steps(run.id)
    if suspended is not None:
        click.echo(render.rollback_suspension(environment, suspended.reason), err=True)
    finish_run(context, run, steps)


def _queue_and_follow(
    context: Context, server: str, environment: str, route: str, body: dict[str, Any]
) -> NoReturn:
    """A promotion or rollback queued on the daemon, followed to its end (cli.remote)."""
    daemon = remote.Remote.at(server)
    queued = daemon.call("POST", remote.environment_path(environment, route), body)
    remote.follow(daemon, str(queued["run_id"]), environment, as_json=context.as_json)
    sys.exit(EXIT_OK)  # not reached: follow exits with the run's code


def _approve_through(
    context: Context, server: str, environment: str, revision: str | None
) -> NoReturn:
    """An approval as the token's identity: authenticated, as the daemon records it."""
    daemon = remote.Remote.at(server)
    path = remote.environment_path(environment, "approvals")
    try:
        record = daemon.call("POST", path, {"revision": revision} if revision else {})
    except RemoteCallError as refused:
        if refused.status in (403, 409):  # the reason, said to be a refusal
            fail(f"approval refused: {refused}", as_json=context.as_json)
        raise
    _approved(context, record, environment)
    sys.exit(EXIT_OK)


def _approved(context: Context, record: dict[str, Any], environment: str) -> None:
    missing = int(record["missing"])
    if context.as_json:
        click.echo(json.dumps(record, indent=2))
        return
    done = f"complete: the daemon promotes it, or gitopsd promote --to {environment}"
    more = f"{missing} more needed" if missing else done
    revision = str(record["revision"])[:12]
    click.echo(f"{record['approver']} approved {revision} for {environment} ({more})")


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="The environment.")
@click.option(
    "--from", "old", type=REVISION, default=None, help="Revision (default: the environment's)."
)
@click.option(
    "--to", "new", type=REVISION, default=None, help="Revision (default: what it gets next)."
)
def diff(context: Context, environment: str, old: str | None, new: str | None) -> None:
    """The environment's rendered desired state at two revisions, and the commits between."""

    with context.workspace(read_only=True) as workspace:
        found = diffing.diff(workspace, environment, old=old, new=new)
    if context.as_json:
        click.echo(json.dumps(diffing.report(found), indent=2))
    else:
        click.echo(render.diff(found))
    sys.exit(EXIT_CHANGES if found.differs else EXIT_OK)
