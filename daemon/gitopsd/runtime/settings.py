"""The daemon's settings, in one place: flags of `gitopsd serve` over `GITOPSD_*` variables.

Only this model reads the environment; everything else is handed the values it needs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gitopsd.model.fields import parse_duration


class DaemonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GITOPSD_", extra="ignore")

    listen: str = Field("127.0.0.1:8080", description="HOST:PORT of the HTTP API.")
    poll_interval: float = Field(30.0, gt=0, description="Seconds between fetches of a remote.")
    log_format: str = Field("text", pattern="^(text|json)$", description="text or json lines.")
    tokens_file: Path | None = Field(None, description="YAML list of API tokens (SPEC 6).")
    webhook_secret: SecretStr | None = Field(None, description="GitHub webhook HMAC secret.")
    shutdown_grace: float = Field(
        30.0, ge=0, description="Seconds running steps get to finish after SIGTERM."
    )
    max_body: int = Field(1_048_576, gt=0, description="Largest request body, in bytes.")
    leader_poll: float = Field(
        2.0, gt=0, description="Seconds between a standby's tries to lead (PostgreSQL store)."
    )
    leader_timeout: float = Field(
        10.0,
        ge=0.5,
        description="Seconds a silent leader keeps the lead before PostgreSQL ends its session;"
        " a leader confirms its lead four times as often. Failover takes at most this plus"
        " leader_poll (a leader that dies with its host still up: leader_poll).",
    )

    @field_validator(
        "poll_interval", "shutdown_grace", "leader_poll", "leader_timeout", mode="before"
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return float(value)  # a plain number of seconds, as variables are written
            except ValueError:
                return parse_duration(value)
        return value

    def host_and_port(self) -> tuple[str, int]:
        """`127.0.0.1:8080` -> ("127.0.0.1", 8080); `[::1]:8080` -> ("::1", 8080)."""
        host, separator, port = self.listen.rpartition(":")
        if not separator or not port.isdigit() or not host:
            raise ValueError(f"--listen {self.listen!r}: expected HOST:PORT")
        return host.strip("[]"), int(port)
