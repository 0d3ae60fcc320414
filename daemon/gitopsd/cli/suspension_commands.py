"""`gitopsd suspend | resume`: stop and restart automatic work for one environment.

SPEC 3.6: while suspended, an environment takes no commit, auto promotion or scheduled drift
remediation (they are held, and recorded as held); manual runs still work. Exit codes: 0 done,
1 refused (suspended already, not suspended, unknown environment).
"""

from __future__ import annotations

import json

import click

from gitopsd.cli.context import Context, common_options
from gitopsd.model.state import MAX_REASON_LENGTH
from gitopsd.runtime.promotion import suspending


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="The environment to suspend.")
@click.option(
    "--reason",
    default="",
    callback=lambda _context, _option, text: _short_reason(text),
    help=f"Why, for status and the history (at most {MAX_REASON_LENGTH} characters).",
)
@click.option("--as", "actor", default="local", show_default=True, help="Who suspends.")
def suspend(context: Context, environment: str, reason: str, actor: str) -> None:
    """Hold an environment's automatic work (commits, promotion, drift remediation)."""

    with context.workspace() as workspace:
        done = suspending.suspend(workspace, environment, reason=reason, actor=actor)
    if context.as_json:
        click.echo(json.dumps({"environment": environment, **done.model_dump(mode="json")}))
    else:
        why = f" ({reason})" if reason else ""
        click.echo(f"{environment} suspended{why}: automatic work waits for gitopsd resume")


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="The environment to resume.")
@click.option("--as", "actor", default="local", show_default=True, help="Who resumes.")
def resume(context: Context, environment: str, actor: str) -> None:
    """Restart an environment's automatic work (the daemon takes its current candidate)."""

    with context.workspace() as workspace:
        ended = suspending.resume(workspace, environment, actor=actor)
    if context.as_json:
        click.echo(
            json.dumps({"environment": environment, "resumed": ended.model_dump(mode="json")})
        )
    else:
        click.echo(f"{environment} resumed (suspended by {ended.actor})")


def _short_reason(text: str) -> str:
    """The reason as given, when the API would take it too (a usage error otherwise)."""
    if len(text) > MAX_REASON_LENGTH:
        raise click.BadParameter(f"{len(text):,} characters, over {MAX_REASON_LENGTH:,}")
    return text
