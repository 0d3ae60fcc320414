"""`gitopsd promote | approve | rollback | diff`: move verified revisions down the chain.

Exit codes are SPEC section 5's: promote 0 applied (or nothing to promote), 1 failed or
refused (the revision may not be promoted: the reason is printed), 3 waiting for approvals,
a window or the soak; approve 0 recorded, 1 refused (with the reason);
rollback 0, 1; diff 0 same, 2 differs, 1 error.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import click

from gitopsd import answers
from gitopsd.cli import progress, render
from gitopsd.cli.context import (
    EXIT_CHANGES,
    EXIT_OK,
    Context,
    common_options,
    fail,
    trust_option,
)
from gitopsd.cli.run_commands import EXIT_WAITING, finish_run
from gitopsd.cli.stopping import stopping
from gitopsd.engine.approving import Person
from gitopsd.errors import ApprovalRefusedError
from gitopsd.runtime.promotion import diffing, promoting


@click.command()
@common_options
@trust_option
@click.option("--to", "environment", required=True, help="The environment to promote into.")
@click.option(
    "--revision", default=None, help="A revision the upstream verified (default: its newest)."
)
@click.option("--force", is_flag=True, help="Promote through a change window (recorded).")
@click.option(
    "--as", "actor", default="local", show_default=True, help="Who promotes, for the history."
)
def promote(
    context: Context, environment: str, revision: str | None, force: bool, actor: str
) -> None:
    """Promote the upstream's verified revision (or --revision) into an environment."""

    with context.workspace() as workspace, stopping(workspace), progress.shown():
        decision, run = promoting.promote(
            workspace, environment, revision=revision, forced=force, actor=actor
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
@click.option("--revision", default=None, help="The revision (default: the pending one).")
@click.option("--as", "name", required=True, help="Who approves.")
@click.option("--email", default=None, help="The approver's email (checked against the author).")
def approve(
    context: Context, environment: str, revision: str | None, name: str, email: str | None
) -> None:
    """Record an approval of the revision waiting to enter an environment."""

    with context.workspace() as workspace:
        try:
            record, missing = promoting.approve(
                workspace, environment, revision=revision, approver=Person(name, email)
            )
        except ApprovalRefusedError as refused:  # the reason, said to be a refusal
            message = f"approval refused: {refused}"
            fail(message, as_json=context.as_json, code=answers.exit_code(refused))
            return
    if context.as_json:
        click.echo(json.dumps({**record.model_dump(mode="json"), "missing": missing}, indent=2))
    else:
        done = f"complete: the daemon promotes it, or gitopsd promote --to {environment}"
        more = f"{missing} more needed" if missing else done
        click.echo(f"{name} approved {record.revision[:12]} for {environment} ({more})")
    sys.exit(EXIT_OK)


@click.command()
@common_options
@trust_option
@click.option("--env", "environment", required=True, help="The environment to roll back.")
@click.option("--to", "revision", required=True, help="A revision it verified before.")
@click.option("--as", "actor", default="local", show_default=True, help="Who rolls back.")
def rollback(context: Context, environment: str, revision: str, actor: str) -> None:
    """Re-apply a revision the environment verified before."""

    with context.workspace() as workspace, stopping(workspace), progress.shown():
        run = promoting.roll_back(workspace, environment, to=revision, actor=actor)
        steps = workspace.store.list_steps(run.id)
    finish_run(context, run, steps)


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="The environment.")
@click.option("--from", "old", default=None, help="Revision (default: the environment's).")
@click.option("--to", "new", default=None, help="Revision (default: what it gets next).")
def diff(context: Context, environment: str, old: str | None, new: str | None) -> None:
    """The environment's rendered desired state at two revisions, and the commits between."""

    with context.workspace(read_only=True) as workspace:
        found = diffing.diff(workspace, environment, old=old, new=new)
    if context.as_json:
        click.echo(
            json.dumps(
                {
                    "environment": environment,
                    "from": found.old,
                    "to": found.new,
                    "differs": found.differs,
                    "diff": found.text,
                    "summary": [dataclasses.asdict(change) for change in found.changes],
                    "unchanged": found.unchanged,
                    "changelog": found.changelog,
                    "commits": found.commits,
                },
                indent=2,
            )
        )
    else:
        click.echo(render.diff(found))
    sys.exit(EXIT_CHANGES if found.differs else EXIT_OK)
