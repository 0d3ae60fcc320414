"""The daemon's settings, in one place: flags of `gitopsd serve` over `GITOPSD_*` variables.

Only this model reads the environment; everything else is handed the values it needs.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gitopsd.model.fields import parse_duration
from gitopsd.runtime.service.retention import Policy

DAYS = re.compile(r"^\s*(\d+)d(.*)$")
LONGEST_DURATION = 100 * 365 * 86400.0  # 100 years: longer is a typo, and overflows dates
MOST_ROWS = 2**31  # a count of rows to keep or delete: beyond it SQL and memory give out
PORTS = range(1, 65536)


# the settings that are durations: a number of seconds, or text such as 30s, 5m, 90d
DURATIONS = (
    "poll_interval",
    "shutdown_grace",
    "leader_poll",
    "leader_timeout",
    "header_timeout",
    "body_timeout",
    "retention_max_age",
    "retention_interval",
)


class DaemonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GITOPSD_", extra="ignore")

    listen: str = Field("127.0.0.1:8080", description="HOST:PORT of the HTTP API.")
    poll_interval: float = Field(
        30.0,
        ge=0.1,
        description="Seconds between fetches of a remote, at least 0.1: a poll that outlasts"
        " a shorter one only has the next one skipped (and logged) over and over.",
    )
    log_format: str = Field("text", pattern="^(text|json)$", description="text or json lines.")
    tokens_file: Path | None = Field(None, description="YAML list of API tokens (docs/daemon.md).")
    webhook_secret: SecretStr | None = Field(None, description="GitHub webhook HMAC secret.")
    trust_file: Path | None = Field(
        None,
        description="Trusted commit signers and the environments that require signed commits"
        " (docs/security.md).",
    )
    shutdown_grace: float = Field(
        30.0, ge=0, description="Seconds running steps get to finish after SIGTERM."
    )
    max_body: int = Field(1_048_576, gt=0, description="Largest request body, in bytes.")
    allowed_hosts: str = Field(
        "",
        description="Comma-separated HOST or HOST:PORT the API answers besides the listen"
        " address (the Host header); * for any (behind a proxy that checks it).",
    )
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's headers."
    )
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client has to send a request's body (then 408)."
    )
    max_connections: int = Field(
        1000, gt=0, description="Open HTTP connections at most; past it requests get 503."
    )
    public_url: str | None = Field(
        None,
        pattern="^https?://",
        description="Base URL of the API as others reach it (run links); default from listen.",
    )
    github_repository: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="owner/repo of the GitOps repository, for commit statuses.",
    )
    github_token: SecretStr | None = Field(
        None, description="Token allowed to set commit statuses (GITOPSD_GITHUB_TOKEN only)."
    )
    github_api_url: str = Field(
        "https://api.github.com",
        pattern="^https?://",
        description="GitHub's REST API (GitHub Enterprise: https://HOST/api/v3).",
    )
    leader_poll: float = Field(
        2.0, gt=0, description="Seconds between a standby's tries to lead (PostgreSQL store)."
    )
    leader_timeout: float = Field(
        10.0,
        ge=0.5,
        description="Seconds a silent leader keeps the lead before PostgreSQL ends its session;"
        " a leader confirms its lead four times as often. Failover takes at most this plus"
        " leader_poll (a leader that dies with its host still up: leader_poll). Also how long"
        " a session of the store may sit inside a transaction: a frozen leader's is ended.",
    )

    retention_max_age: float = Field(
        90 * 86400.0, gt=0, description="Runs and events older than this are pruned (90d)."
    )
    retention_max_runs: int = Field(
        1000, ge=1, le=MOST_ROWS, description="Finished runs kept per environment, newest first."
    )
    retention_max_events: int = Field(
        100_000, ge=1, le=MOST_ROWS, description="Events kept per environment, newest first."
    )
    retention_interval: float = Field(
        300.0,
        ge=1.0,
        description="Seconds between prunings, at least 1: a pass reads every environment's"
        " history, and passes back to back would keep the store's writer busy.",
    )
    retention_batch: int = Field(500, ge=1, le=MOST_ROWS, description="Rows deleted per statement.")

    @field_validator(*DURATIONS, mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return float(value)  # a plain number of seconds, as variables are written
            except ValueError:
                return _days_and_duration(value)
        return value

    @field_validator(*DURATIONS)
    @classmethod
    def _at_most_a_century(cls, value: float) -> float:
        """A duration past 100 years is a typo; it would otherwise start the daemon and only
        fail later, in date arithmetic (a pruning's cutoff) or a timer."""
        if value > LONGEST_DURATION:
            raise ValueError(f"{value:.0f} seconds is over 100 years (36500d)")
        return value

    def retention(self) -> Policy:
        """What the daemon's pruning keeps (runtime.service.retention)."""
        return Policy(
            max_age=self.retention_max_age,
            max_runs=self.retention_max_runs,
            max_events=self.retention_max_events,
            interval=self.retention_interval,
            batch=self.retention_batch,
        )

    def resolved_public_url(self) -> str:
        """`public_url` without its trailing slash, or `http://` + `listen` (a wildcard
        address replaced by this machine's name, which others can at least try)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = self.host_and_port()
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
            host = socket.gethostname()
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def allowed_host_entries(self) -> list[str]:
        """`allowed_hosts` split at commas, blanks dropped."""
        return [entry.strip() for entry in self.allowed_hosts.split(",") if entry.strip()]

    def host_and_port(self) -> tuple[str, int]:
        """`127.0.0.1:8080` -> ("127.0.0.1", 8080); `[::1]:8080` -> ("::1", 8080)."""
        host, separator, port = self.listen.rpartition(":")
        if not separator or not port.isdigit() or not host:
            raise ValueError(f"--listen {self.listen!r}: expected HOST:PORT")
        if int(port) not in PORTS:
            raise ValueError(
                f"--listen (GITOPSD_LISTEN) {self.listen!r}: the port must be 1 to 65535"
            )
        return host.strip("[]"), int(port)


def _days_and_duration(value: str) -> float:
    """A duration as manifests spell it, which may also start with days: `90d`, `1d12h`."""
    days = DAYS.match(value)
    try:
        if days is None:
            seconds: float = parse_duration(value)
            return seconds
        rest = days.group(2).strip()
        return int(days.group(1)) * 86400.0 + (parse_duration(rest) if rest else 0.0)
    except ValueError:  # manifests' message, which knows no days
        raise ValueError(
            f"invalid duration {value!r}: use a number with d, h, m or s, e.g. 90d, 12h, 1d12h"
        ) from None
