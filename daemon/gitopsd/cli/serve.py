"""`gitopsd serve`: the daemon (SPEC section 6), or one reconcile with `--once`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from gitopsd.api import guards, listening
from gitopsd.cli.context import EXIT_FAILED, EXIT_OK, Context, common_options
from gitopsd.engine import fieldchecks
from gitopsd.errors import AllowedHostsError, GitopsdError
from gitopsd.runtime.notifications.commit_statuses import CommitStatuses
from gitopsd.runtime.runs import revisions
from gitopsd.runtime.runs.workspace import Workspace

if TYPE_CHECKING:
    from gitopsd.api import auth

log = logging.getLogger("gitopsd.serve")


@click.command()
@common_options
@click.option(
    "--listen", default=None, help="HOST:PORT of the HTTP API [env GITOPSD_LISTEN; 127.0.0.1:8080]."
)
@click.option(
    "--allowed-hosts",
    default=None,
    help="Comma-separated HOST or HOST:PORT the API answers besides the listen address; * for"
    " any, behind a proxy that checks the host [env GITOPSD_ALLOWED_HOSTS; none].",
)
@click.option(
    "--poll-interval",
    default=None,
    help="How often to fetch a remote repository, e.g. 30s [env GITOPSD_POLL_INTERVAL; 30s].",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text or JSON [env GITOPSD_LOG_FORMAT; text].",
)
@click.option(
    "--public-url",
    default=None,
    help="Base URL of the API for run links [env GITOPSD_PUBLIC_URL; http://LISTEN].",
)
@click.option(
    "--github-repository",
    default=None,
    help="owner/repo to set commit statuses on, with GITOPSD_GITHUB_TOKEN "
    "[env GITOPSD_GITHUB_REPOSITORY; none].",
)
@click.option(
    "--github-api-url",
    default=None,
    help="GitHub's REST API [env GITOPSD_GITHUB_API_URL; https://api.github.com].",
)
@click.option(
    "--retention-max-age",
    default=None,
    help="Prune runs and events older than this, e.g. 90d, 12h [env GITOPSD_RETENTION_MAX_AGE;"
    " 90d].",
)
@click.option(
    "--retention-max-runs",
    default=None,
    type=click.IntRange(min=1, max=2**31),
    help="Finished runs kept per environment [env GITOPSD_RETENTION_MAX_RUNS; 1000].",
)
@click.option(
    "--trust-file",
    default=None,
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML file of trusted commit signers and the environments that require signed"
    " commits; keep it outside the repository [env GITOPSD_TRUST_FILE; none].",
)
@click.option("--once", is_flag=True, help="Reconcile every environment once, then exit.")
def serve(
    context: Context,
    listen: str | None,
    allowed_hosts: str | None,
    poll_interval: str | None,
    log_format: str | None,
    public_url: str | None,
    github_repository: str | None,
    github_api_url: str | None,
    retention_max_age: str | None,
    retention_max_runs: int | None,
    trust_file: Path | None,
    once: bool,
) -> None:
    """Watch the repository and keep environments at what it says, with an HTTP API."""
    # the daemon's heavy libraries (APScheduler, watchdog, prometheus_client, pydantic-settings,
    # starlette, uvicorn) load to serve, not for `gitopsd --help` (benchmarks/startup.py)
    from gitopsd.adapters import metrics
    from gitopsd.adapters.scheduling import BackgroundJobs
    from gitopsd.api import app as api_app
    from gitopsd.api import auth, server
    from gitopsd.dashboard import routing
    from gitopsd.runtime import logs
    from gitopsd.runtime.service import announcing, leadership
    from gitopsd.runtime.service.daemon import Daemon
    from gitopsd.runtime.service.settings import DaemonSettings

    flags: dict[str, Any] = {
        "listen": listen,
        "allowed_hosts": allowed_hosts,
        "poll_interval": poll_interval,
        "log_format": log_format,
        "public_url": public_url,
        "github_repository": github_repository,
        "github_api_url": github_api_url,
        "retention_max_age": retention_max_age,
        "retention_max_runs": retention_max_runs,
        "trust_file": trust_file,
    }
    try:
        settings = DaemonSettings(**{k: v for k, v in flags.items() if v is not None})
        host, port = settings.host_and_port()
    except (ValidationError, ValueError) as error:
        # a bad flag or GITOPSD_* value, like an unknown flag, is a usage error (exit 64)
        raise click.UsageError(_settings_error(error)) from None
    logs.configure(log_format=settings.log_format)
    try:
        rules = _request_rules(host, port, settings.allowed_host_entries())
    except AllowedHostsError as error:
        raise click.UsageError(str(error)) from None
    tokens = auth.Tokens.load(settings.tokens_file) if settings.tokens_file else auth.Tokens.none()
    if not once:
        auth.check_listen_allowed(host, tokens.present)
    # bound before the store opens and work starts: a taken port stops here, nothing begun
    context = dataclasses.replace(
        context,
        trust_file=settings.trust_file,
        idle_transaction_timeout=settings.leader_timeout,  # a frozen leader's: see the store
    )
    with _listening(host, port, once=once) as sockets, context.workspace() as workspace:
        workspace.delay_cache_writes(revisions.WRITE_DELAY)
        _warn_of_unknown_scopes(tokens, workspace)
        delivery = announcing.delivery_from(settings, github=_github_client)

        def make_daemon(on: Workspace) -> Daemon:
            return Daemon(
                on,
                jobs=BackgroundJobs(),
                poll_interval=settings.poll_interval,
                metrics=metrics.recorder,
                delivery=delivery,
                retention=settings.retention(),
            )

        if once:
            sys.exit(EXIT_OK if make_daemon(workspace).run_once() else EXIT_FAILED)
        terms = leadership.terms(
            workspace,
            make_daemon=make_daemon,
            poll=settings.leader_poll,
            timeout=settings.leader_timeout,
        )
        terms.start()  # leads at once on its own store; stands by while another daemon leads
        secret = settings.webhook_secret
        https = settings.resolved_public_url().startswith("https://")
        web = routing.dashboard(terms, tokens=tokens, https=https)
        app = api_app.create_app(
            terms,
            tokens=tokens,
            webhook_secret=secret.get_secret_value().encode() if secret else None,
            rules=rules,
            max_body=settings.max_body,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
            extra_routes=web.routes,
        )
        signals: list[int] = []

        def on_signal(signum: int) -> None:
            signals.append(signum)
            if len(signals) > 1:  # a second signal while winding down: stop the drivers now
                log.warning("second stop signal: stopping the drivers now")
                terms.interrupt()

        limits = server.Limits(settings.header_timeout, settings.max_connections)
        server.serve(
            app,
            host=host,
            port=port,
            sockets=sockets,
            on_signal=on_signal,
            limits=limits,
            on_stopping=web.close,
        )
        log.info("stopping: running steps get %.0fs to finish", settings.shutdown_grace)
        terms.stop(grace=settings.shutdown_grace)
        log.info("stopped")
    sys.exit(EXIT_OK)


@contextlib.contextmanager
def _listening(host: str, port: int, *, once: bool) -> Iterator[list[socket.socket]]:
    """The API's listening sockets (none with `--once`), closed when serve ends."""
    sockets: list[socket.socket] = [] if once else listening.listen(host, port)
    with contextlib.ExitStack() as closing:
        for sock in sockets:
            closing.enter_context(sock)
        yield sockets


def _warn_of_unknown_scopes(tokens: auth.Tokens, workspace: Workspace) -> None:
    """Say at start which environments of a token the branch head does not have (a typo, or
    one still to come): such a token reaches nothing there, and is not refused for it."""
    if not tokens.present:
        return
    try:
        known = workspace.manifests().environments
    except GitopsdError:
        return  # the daemon reports a head it cannot load, once it starts
    for unknown in tokens.unknown_environments(set(known)):
        log.warning("tokens file: token %s: no such environment at the branch head", unknown)


def _request_rules(host: str, port: int, allowed: list[str]) -> guards.RequestRules:
    """The request rules (api.guards) for this listener; a wildcard listener without
    `--allowed-hosts` is said at start, since only loopback names reach its API."""
    if host in guards.WILDCARDS and not allowed:
        log.warning(
            "listening on %s:%d without --allowed-hosts: the API answers only to loopback"
            " names (probes and metrics also to IP addresses); list the names clients use",
            host,
            port,
        )
    return guards.RequestRules.for_listen(host, port, allowed)


def _settings_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return f"{field} (GITOPSD_{field.upper()}): {fieldchecks.describe(first)}"
    return str(error)


def _github_client(api_url: str, token: str) -> CommitStatuses:
    """The GitHub REST client, imported only where commit statuses are configured: httpx
    costs the idle daemon memory it otherwise never needs."""
    from gitopsd.adapters.github_api import GitHubClient  # httpx: heavy, optional

    return GitHubClient(api_url, token)
