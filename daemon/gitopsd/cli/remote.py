"""`--server URL`: the commands that act on an environment, through a running daemon's API.

`gitopsd approve | promote | rollback | cancel | suspend | resume` act on the state store
directly by default. With `--server URL` (GITOPSD_SERVER) they call that daemon's API instead,
as the identity of the token in GITOPSD_TOKEN (an environment variable, never a flag: a token
on a command line is visible to every user of the host). The daemon applies to the call the
rules it applies to any API call, and an environment that takes only authenticated approvals
(`approvals.authenticated`) counts such an approval. `--as` and `--email` would name an
identity the token already gives: with `--server` they are a usage error (exit 64), so nobody
believes they acted as someone else.

The daemon's answer becomes the exit code of SPEC section 5: an error (401, 403, 404, 409,
422, 503) is exit 1 with the daemon's reason; an unreachable daemon is exit 1 naming the URL.
`promote` and `rollback` follow the queued run to its end, as their local forms run it in the
foreground: 0 succeeded (or nothing to promote), 1 failed or refused, 3 waiting.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import click
import httpx

from gitopsd.api.auth import is_loopback
from gitopsd.cli import render
from gitopsd.errors import RemoteCallError
from gitopsd.model.state import escape_unsafe

Command = TypeVar("Command", bound=Callable[..., Any])

SERVER_VARIABLE = "GITOPSD_SERVER"
TOKEN_VARIABLE = "GITOPSD_TOKEN"  # noqa: S105 (the variable's name, not a token)
ACTING = ("approve", "promote", "rollback", "cancel", "suspend", "resume")  # take --server
TIMEOUT = 30.0  # seconds for one call; a promotion is followed over many
POLL = 0.5  # seconds between two looks at a run being followed
EXIT_WAITING = 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
_ENDED = {"succeeded": 0, "failed": 1, "cancelled": 1, "superseded": 1, "waiting": EXIT_WAITING}
_ENVIRONMENT_WAITS = ("waiting_approval", "waiting_window")


def server_option(command: Command) -> Command:
    """`--server URL` / GITOPSD_SERVER (an empty one is none: the state store is used)."""
    option = click.option(
        "--server",
        envvar=SERVER_VARIABLE,
        default=None,
        callback=lambda _context, _option, value: value or None,
        metavar="URL",
        help="Act through the gitopsd daemon at URL, as the token in GITOPSD_TOKEN.",
    )
    return option(command)


def refuse_declared_identity(server: str | None, **declared: str | None) -> None:
    """A usage error for `--as` (or `--email`) given with `--server`: the token says who."""
    given = [f"--{name}" for name, value in declared.items() if value is not None]
    if server and given:
        raise click.UsageError(
            f"{' and '.join(given)} cannot be used with --server: the daemon acts as the "
            "identity of the token in GITOPSD_TOKEN"
        )


@dataclass(frozen=True)
class Remote:
    """A running daemon's API at `url`, called with `token` (None: an open daemon)."""

    url: str
    token: str | None

    @classmethod
    def at(cls, url: str) -> Remote:
        remote = cls(url.rstrip("/"), os.environ.get(TOKEN_VARIABLE) or None)
        remote.warn_if_unencrypted()
        return remote

    def warn_if_unencrypted(self) -> None:
        """Say so when the token is about to cross a network in clear text (`http://` to a
        host other than loopback): anyone on the path can read it and act as its owner. A
        warning, not a refusal: the daemon itself serves plain HTTP, and a private network
        (a cluster's service) may be the user's informed choice."""
        parts = urlsplit(self.url)
        if self.token is None or parts.scheme != "http" or is_loopback(parts.hostname or ""):
            return
        click.echo(
            f"warning: {TOKEN_VARIABLE} is sent to {self.url} unencrypted (http://): anyone "
            "on the network path can read it; use an https:// URL (a TLS proxy in front)",
            err=True,
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer of a successful call; RemoteCallError says why not."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = httpx.request(
                method, self.url + path, json=body, headers=headers, timeout=TIMEOUT
            )
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise RemoteCallError(
                f"cannot reach the gitopsd daemon at {self.url}: {error}"
            ) from None
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and isinstance(data, dict):
            return data
        said = data.get("error") if isinstance(data, dict) else None
        if not isinstance(said, str):
            said = f"HTTP {response.status_code} (is {self.url} a gitopsd daemon?)"
        if response.status_code == 401:
            said = f"{said}: set GITOPSD_TOKEN to a token the daemon at {self.url} knows"
        raise RemoteCallError(said, status=response.status_code)


def environment_path(environment: str, *rest: str) -> str:
    return "/".join(["/api/v1/environments", quote(environment, safe=""), *rest])


def show(data: dict[str, Any], text: str, *, as_json: bool) -> None:
    """The daemon's answer as JSON, or `text`: one line that may quote what the daemon stored
    (a reason, an outcome), escaped as every such line is (`escape_unsafe`)."""
    click.echo(json.dumps(data, indent=2) if as_json else escape_unsafe(text))


def follow(remote: Remote, run_id: str, environment: str, *, as_json: bool) -> None:
    """Follow a queued promotion or rollback to its end, then exit as its local form does;
    Ctrl-C stops following (exit 130), not the run, which is the daemon's."""
    click.echo(f"queued as {run_id} on {remote.url}; following it", err=True)
    try:
        _follow(remote, run_id, environment, as_json=as_json)
    except KeyboardInterrupt:
        click.echo(
            f"stopped following {run_id}; it goes on in the daemon "
            f"(gitopsd cancel {run_id} --server {remote.url} stops it)",
            err=True,
        )
        sys.exit(INTERRUPTED)


def _follow(remote: Remote, run_id: str, environment: str, *, as_json: bool) -> None:
    while True:
        run = remote.call("GET", f"/api/v1/runs/{quote(run_id, safe='')}")
        status = str(run.get("status"))
        if status == "done":  # the request ended without a run: why
            _ended_without_run(remote, run, environment, as_json=as_json)
        if status in _ENDED:
            code = _ENDED[status]
            if run.get("trigger") == "rollback":
                _say_suspension(remote, run_id, environment)
            why = run.get("error") or run.get("reason") or run.get("outcome") or ""
            text = f"{environment}: {run_id} {status}" + (f": {why}" if why else "")
            show(run, text, as_json=as_json)
            sys.exit(code)
        time.sleep(POLL)


def _say_suspension(remote: Remote, run_id: str, environment: str) -> None:
    """What the local `rollback` says on stderr when the run suspended the environment's
    automatic work (its suspension names the run). Not knowing (the daemon not answering
    now) changes nothing: the run's own end decides the exit code."""
    try:
        suspension = remote.call("GET", environment_path(environment)).get("suspension") or {}
    except RemoteCallError:
        return
    if suspension.get("run_id") == run_id:
        click.echo(render.rollback_suspension(environment, str(suspension["reason"])), err=True)


def _ended_without_run(
    remote: Remote, run: dict[str, Any], environment: str, *, as_json: bool
) -> None:
    """Refused (1), or nothing to run: the environment waits for approvals or a window
    (3), or has nothing to take (0)."""
    outcome = str(run.get("outcome") or "")
    if outcome != "nothing to do":
        show(run, f"{environment}: {outcome}", as_json=as_json)
        sys.exit(1)
    state = remote.call("GET", environment_path(environment))
    waiting = state.get("waiting") or {}
    if state.get("status") in _ENVIRONMENT_WAITS:
        show(state, f"{environment}: {waiting.get('reason', state['status'])}", as_json=as_json)
        sys.exit(EXIT_WAITING)
    show(state, f"{environment}: nothing to promote", as_json=as_json)
    sys.exit(0)
