"""`gitopsd suspend | resume`: stop and restart automatic work for one environment.

SPEC 3.6: while suspended, an environment takes no commit, auto promotion or scheduled drift
remediation (they are held, and recorded as held); manual runs still work. Exit codes: 0 done,
1 refused (suspended already, not suspended, unknown environment). With `--server URL`,
through a running daemon's API as the token's identity (cli.remote).
"""

from __future__ import annotations

import click

from gitopsd.cli import remote
from gitopsd.cli.context import Context, common_options
from gitopsd.model.state import MAX_REASON_LENGTH, reason_problem
from gitopsd.runtime.promotion import suspending


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="The environment to suspend.")
@click.option(
    "--reason",
    default="",
    callback=lambda _context, _option, text: _short_reason(text),
    help=f"Why, for status and the history: one line of at most {MAX_REASON_LENGTH} characters.",
)
@click.option("--as", "actor", default=None, help="Who suspends [default: local].")
@remote.server_option
def suspend(
    context: Context, environment: str, reason: str, actor: str | None, server: str | None
) -> None:
    """Hold an environment's automatic work (commits, promotion, drift remediation)."""

    remote.refuse_declared_identity(server, **{"as": actor})
    if server is not None:
        path = remote.environment_path(environment, "suspension")
        answer = remote.Remote.at(server).call("POST", path, {"reason": reason})
    else:
        with context.workspace() as workspace:
            done = suspending.suspend(workspace, environment, reason=reason, actor=actor or "local")
        answer = {"environment": environment, **done.model_dump(mode="json")}
    why = f" ({reason})" if reason else ""
    text = f"{environment} suspended{why}: automatic work waits for gitopsd resume"
    remote.show(answer, text, as_json=context.as_json)


@click.command()
@common_options
@click.option("--env", "environment", required=True, help="The environment to resume.")
@click.option("--as", "actor", default=None, help="Who resumes [default: local].")
@remote.server_option
def resume(context: Context, environment: str, actor: str | None, server: str | None) -> None:
    """Restart an environment's automatic work (the daemon takes its current candidate)."""

    remote.refuse_declared_identity(server, **{"as": actor})
    if server is not None:
        path = remote.environment_path(environment, "suspension")
        answer = remote.Remote.at(server).call("DELETE", path)
    else:
        with context.workspace() as workspace:
            ended = suspending.resume(workspace, environment, actor=actor or "local")
        answer = {"environment": environment, "resumed": ended.model_dump(mode="json")}
    text = f"{environment} resumed (suspended by {answer['resumed']['actor']})"
    remote.show(answer, text, as_json=context.as_json)


def _short_reason(text: str) -> str:
    """The reason as given, when the API would take it too (a usage error otherwise)."""
    problem = reason_problem(text)
    if problem is not None:
        raise click.BadParameter(problem)
    return text
