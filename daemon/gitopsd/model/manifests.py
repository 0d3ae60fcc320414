"""The manifests of a GitOps repo: `Component`, `Environment` and the repo's `gitopsd.yaml`.

These are the shapes of the repository format (docs/manifests.md), as pydantic models that
forbid unknown fields, so a typo in a manifest is an error with a line number rather than a
silently ignored setting.
Cross-file rules (names that must exist, cycles, layers) live in `engine.validation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    JsonValue,
    model_validator,
)

from gitopsd.model.fields import (
    ENV_NAME,
    GITHUB_REPOSITORY,
    HTTP_URL,
    Command,
    Cron,
    Name,
    PositiveSeconds,
    Seconds,
    Timezone,
    check_env_name,
    check_env_names,
    check_github_repository,
    check_http_url,
    check_input_names,
)

DEFAULT_LAYERS = ("network", "clusters", "addons", "platform")


class Strict(BaseModel):
    """Base of every manifest part: unknown fields are errors, values are immutable, and
    types are strict (YAML has already typed every value: `true` is never a number).

    Validators are built on first use, not at import (`defer_build`): a command that reads
    no manifest (`status`, `runs`) never pays for building them (benchmarks/README.md)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, strict=True, defer_build=True
    )


# --- Component -------------------------------------------------------------------------------


class ComponentMetadata(Strict):
    name: Name
    layer: str = Field(description="one of the repo's layers (gitopsd.yaml `layers`)")


class CommandDriver(Strict):
    """Runs local programs; the protocol is docs/drivers.md."""

    type: Literal["command"]
    plan: Command
    apply: Command
    destroy: Command | None = None
    check: Command | None = Field(default=None, description="drift check; defaults to plan")
    health: Command | None = Field(default=None, description="readiness probe after apply")
    env: Annotated[dict[str, str], AfterValidator(check_env_names)] = Field(default_factory=dict)


class GitHubActionsDriver(Strict):
    """Dispatches a GitHub Actions workflow and follows the run it started."""

    type: Literal["github-actions"]
    repository: Annotated[str, AfterValidator(check_github_repository)] = Field(
        description="owner/repo", json_schema_extra={"pattern": GITHUB_REPOSITORY.pattern}
    )
    workflow: str = Field(min_length=1, description="workflow file name or id")
    ref: str = Field(default="main", min_length=1, description="branch or tag to dispatch on")
    api_url: Annotated[str, AfterValidator(check_http_url)] = Field(
        default="https://api.github.com",
        description="REST API base URL; GitHub Enterprise Server: https://HOST/api/v3",
        json_schema_extra={"pattern": HTTP_URL.pattern},
    )
    token_env: Annotated[str, AfterValidator(check_env_name)] = Field(
        default="GITHUB_TOKEN",  # the name of a variable, not a secret
        description="environment variable holding the token (never logged)",
        json_schema_extra={"pattern": ENV_NAME.pattern},
    )


Driver = Annotated[CommandDriver | GitHubActionsDriver, Field(discriminator="type")]


class RetryPolicy(Strict):
    """Exponential backoff with full jitter between attempts of one driver call."""

    attempts: int = Field(default=1, ge=1, le=100)
    backoff: Seconds = 5.0
    max_backoff: Seconds = 120.0

    @model_validator(mode="after")
    def _backoff_within_max(self) -> RetryPolicy:
        if self.backoff > self.max_backoff:
            raise ValueError(
                f"backoff ({self.backoff:g}s) is longer than max_backoff ({self.max_backoff:g}s)"
            )
        return self


class ComponentSpec(Strict):
    depends_on: list[Name] = Field(default_factory=list)
    when: str | None = Field(
        default=None, description="condition (docs/manifests.md); false = not here"
    )
    inputs: Annotated[dict[str, JsonValue], AfterValidator(check_input_names)] = Field(
        default_factory=dict
    )
    driver: Driver
    timeout: PositiveSeconds = 900.0
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    on_failure: Literal["rollback", "stop", "continue"] = "rollback"
    sensitive_outputs: list[str] = Field(
        default_factory=list,
        description="outputs stored encrypted and shown as ***; inputs rendered from them too",
    )


class Component(Strict):
    api_version: Literal["gitopsd.io/v1"] = Field(alias="apiVersion")
    kind: Literal["Component"]
    metadata: ComponentMetadata
    spec: ComponentSpec

    @property
    def name(self) -> str:
        return self.metadata.name


# --- Environment -----------------------------------------------------------------------------


class Promotion(Strict):
    from_: Name | None = Field(default=None, alias="from", description="upstream environment")
    auto: bool = False
    soak: Seconds = 0.0


class Approvals(Strict):
    required: int = Field(default=0, ge=0)
    approvers: list[str] = Field(default_factory=list)
    forbid_author: bool = False


class Gate(Strict):
    name: Name
    command: Command
    timeout: PositiveSeconds = 300.0
    retries: int = Field(default=0, ge=0, le=100)


class Window(Strict):
    kind: Literal["allow", "deny"]
    schedule: Cron
    duration: PositiveSeconds
    timezone: Timezone = "UTC"


class DriftPolicy(Strict):
    schedule: Cron | None = None
    remediate: bool = False


class Selection(Strict):
    include: list[str] | None = Field(default=None, description="component or layer names")


class EnvironmentSpec(Strict):
    promotion: Promotion = Field(default_factory=Promotion)
    approvals: Approvals = Field(default_factory=Approvals)
    gates: list[Gate] = Field(default_factory=list)
    windows: list[Window] = Field(default_factory=list)
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    variables: dict[str, JsonValue] = Field(default_factory=dict)
    overrides: dict[Name, dict[str, JsonValue]] = Field(default_factory=dict)
    components: Selection = Field(default_factory=Selection)
    parallelism: int = Field(default=4, ge=1, le=1024)
    prune: bool = Field(
        default=False, description="destroy components deployed here that it no longer has"
    )
    run_timeout: PositiveSeconds | None = Field(
        default=None, description="a whole run's limit; past it the run stops and fails"
    )


class EnvironmentMetadata(Strict):
    name: Name


class Environment(Strict):
    api_version: Literal["gitopsd.io/v1"] = Field(alias="apiVersion")
    kind: Literal["Environment"]
    metadata: EnvironmentMetadata
    spec: EnvironmentSpec = Field(default_factory=EnvironmentSpec)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def upstream(self) -> str | None:
        return self.spec.promotion.from_


# --- gitopsd.yaml: notifications ------------------------------------------------------------

# What a notification can be told about (docs/notifications.md); engine.announcements makes
# these out of the audit trail.
NotificationEvent = Literal[
    "run_started",
    "run_failed",
    "run_cancelled",
    "environment_verified",
    "approval_pending",
    "drift_detected",
]
DEFAULT_NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = (
    "run_failed",
    "environment_verified",
    "approval_pending",
    "drift_detected",
)


def _notification_retry() -> RetryPolicy:
    return RetryPolicy(attempts=4, backoff=1.0, max_backoff=30.0)


class Notification(Strict):
    """A webhook told what happens. Its URL is a secret (a Slack webhook URL is enough to post),
    so the manifest names the daemon's environment variable that holds it, never the URL."""

    name: Name = Field(description="names it in logs and in gitopsd_notifications_total")
    url_env: Annotated[str, AfterValidator(check_env_name)] = Field(
        description="environment variable of the daemon holding the webhook URL"
    )
    format: Literal["json", "slack"] = Field(
        default="json", description="json: gitopsd's own body; slack: an incoming-webhook body"
    )
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(DEFAULT_NOTIFICATION_EVENTS), min_length=1
    )
    environments: list[Name] | None = Field(
        default=None, description="only these environments (default: every one)"
    )
    timeout: PositiveSeconds = Field(default=5.0, description="per delivery attempt")
    retry: RetryPolicy = Field(default_factory=_notification_retry)


# --- gitopsd.yaml ----------------------------------------------------------------------------


MiB = 1024 * 1024
TiB = 1024**4  # the largest size limit: past it a limit is a typo, not a limit


class Limits(Strict):
    """How much one commit may make gitopsd read and hold, checked from git's sizes before
    anything is read: an oversized file is refused without being parsed (`oversized.py`).
    Sizes are a number of bytes or a string such as `512KiB` or `2MiB`, at most 1 TiB."""

    max_file_bytes: ByteSize = Field(
        default=ByteSize(MiB), gt=0, le=TiB, description="the largest one manifest file may be"
    )
    max_repository_bytes: ByteSize = Field(
        default=ByteSize(64 * MiB),
        gt=0,
        le=TiB,
        description="all manifest files of a commit together",
    )
    max_files: int = Field(
        default=20_000, gt=0, le=2**31, description="manifest files in one commit"
    )


class RepoSettings(Strict):
    """Optional `gitopsd.yaml` at the repo root: the layer order, the environment template and
    the notifications."""

    api_version: Literal["gitopsd.io/v1"] = Field(default="gitopsd.io/v1", alias="apiVersion")
    kind: Literal["Settings"] = "Settings"
    layers: list[Name] = Field(default_factory=lambda: list(DEFAULT_LAYERS), min_length=1)
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="environment template: an Environment `spec` every environment inherits",
    )
    notifications: list[Notification] = Field(
        default_factory=list, description="webhooks told about runs, approvals and drift"
    )
    limits: Limits = Field(default_factory=Limits, description="sizes one commit may reach")
