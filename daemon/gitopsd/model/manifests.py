"""The manifests of a GitOps repo: `Component`, `Environment` and the repo's `gitopsd.yaml`.

These are the shapes of the repository format (docs/manifests.md), as pydantic models that
forbid unknown fields, so a typo in a manifest is an error with a line number rather than a
silently ignored setting.
Cross-file rules (names that must exist, cycles, layers) live in `engine.validation`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, MutableMapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    JsonValue,
    SerializeAsAny,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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
_API_VERSION = "the manifest format's version"


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
    name: Name = Field(description="the component's name, a DNS label", examples=["clusters"])
    layer: str = Field(
        description="one of the repo's layers (gitopsd.yaml `layers`)", examples=["clusters"]
    )


# The validation context key under which a load passes the installed driver types: a mapping
# of each type's name to its settings model (`engine.drivers.settings_of`).
DRIVER_TYPES = "gitopsd.driver_types"
# The validation context key under which a load may pass a table in which the `driver:`
# blocks validated are kept by settings model and text (`repr`): components whose blocks are
# written the same then share one (immutable) settings instance instead of a copy each.
SHARED_DRIVERS = "gitopsd.shared_drivers"


class DriverSettings(Strict):
    """Base of every driver type's settings: a component's `driver:` block, named by `type`.

    Each driver type (built in or a plugin) validates its block with its own subclass, so a
    typo in it is located like any other field's."""

    type: str

    def unsupported(self, action: str) -> str | None:
        """Why this driver cannot run `action` (plan, apply, destroy, check or health), or
        None when it can. Every type runs the first four; `health` is a probe a type offers."""
        return f"the {self.type} driver has no health probe" if action == "health" else None


SharedDrivers = MutableMapping[tuple[type[DriverSettings], str], DriverSettings]


class CommandDriver(DriverSettings):
    """Runs local programs; the protocol is docs/drivers.md."""

    type: Literal["command"] = Field(description="runs local programs")
    plan: Command = Field(description="prints what apply would change", examples=[["./plan.sh"]])
    apply: Command = Field(description="makes the changes", examples=[["./apply.sh"]])
    destroy: Command | None = Field(
        default=None, description="removes what apply made", examples=[["./destroy.sh"]]
    )
    check: Command | None = Field(
        default=None, description="drift check; defaults to plan", examples=[["./check.sh"]]
    )
    health: Command | None = Field(
        default=None, description="readiness probe after apply", examples=[["./health.sh"]]
    )
    env: Annotated[dict[str, str], AfterValidator(check_env_names)] = Field(
        default_factory=dict,
        description="environment variables added to every call (not GITOPSD_*); values may"
        " hold ${{ secrets.NAME }} references and no others",
        examples=[{"TF_IN_AUTOMATION": "1"}],
    )

    def command(self, action: str) -> tuple[str, ...] | None:
        """The argv of `action`; `check` falls back to `plan`."""
        found: tuple[str, ...] | None = getattr(self, action, None)
        return self.plan if action == "check" and found is None else found

    def unsupported(self, action: str) -> str | None:
        return None if self.command(action) is not None else f"has no {action} command"


class GitHubActionsDriver(DriverSettings):
    """Dispatches a GitHub Actions workflow and follows the run it started."""

    type: Literal["github-actions"] = Field(description="dispatches a workflow")
    repository: Annotated[str, AfterValidator(check_github_repository)] = Field(
        description="owner/repo",
        examples=["octo-org/infra"],
        json_schema_extra={"pattern": GITHUB_REPOSITORY.pattern},
    )
    workflow: str = Field(
        min_length=1, description="workflow file name or id", examples=["deploy.yml"]
    )
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

    def unsupported(self, action: str) -> str | None:
        if action == "health":
            return (
                "the github-actions driver has no health probe; "
                "check readiness in the workflow's apply or in an environment gate"
            )
        return None


def _driver_settings(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> DriverSettings:
    """Validate a `driver:` block with the settings model of the type it names, among the
    installed ones the load passed in its context (`DRIVER_TYPES`)."""
    if isinstance(value, DriverSettings):
        return value
    context = info.context or {}
    known: Mapping[str, type[DriverSettings]] = context.get(DRIVER_TYPES, {})
    expected = ", ".join(repr(name) for name in sorted(known))
    if not isinstance(value, dict):
        return handler(value)  # type: ignore[no-any-return]  # pydantic's own "a mapping"
    if "type" not in value:
        raise PydanticCustomError(
            "union_tag_not_found", "driver type missing", {"expected_tags": expected}
        )
    settings = known.get(value["type"]) if isinstance(value["type"], str) else None
    if settings is None:
        raise PydanticCustomError(
            "union_tag_invalid",
            "unknown driver type",
            {"tag": value["type"], "expected_tags": expected},
        )
    shared: SharedDrivers | None = context.get(SHARED_DRIVERS)
    if shared is None:
        return settings.model_validate(value, context=info.context)
    key = (settings, repr(value))
    validated = shared.get(key)  # one look: a weakly held entry may go between two
    if validated is None:
        validated = shared[key] = settings.model_validate(value, context=info.context)
    return validated


Driver = Annotated[SerializeAsAny[DriverSettings], WrapValidator(_driver_settings)]


class RetryPolicy(Strict):
    """Exponential backoff with full jitter between attempts of one driver call."""

    attempts: int = Field(default=1, ge=1, le=100, description="tries in all", examples=[3])
    backoff: Seconds = Field(
        default=5.0,
        description="the random wait between tries is at most this, doubled each try",
        examples=["5s"],
    )
    max_backoff: Seconds = Field(
        default=120.0, description="cap of the doubled backoff", examples=["2m"]
    )

    @model_validator(mode="after")
    def _backoff_within_max(self) -> RetryPolicy:
        if self.backoff > self.max_backoff:
            raise ValueError(
                f"backoff ({self.backoff:g}s) is longer than max_backoff ({self.max_backoff:g}s)"
            )
        return self


@functools.cache
def _default_retry() -> RetryPolicy:
    """The policy of every component that sets none: one immutable instance, shared, instead
    of a copy per component (built on first use, like the models' validators)."""
    return RetryPolicy()


class ComponentSpec(Strict):
    depends_on: list[Name] = Field(
        default_factory=list,
        description="components applied before this one (same or lower layers)",
        examples=[["network"]],
    )
    when: str | None = Field(
        default=None,
        description="condition (docs/manifests.md); false = not here",
        examples=["env.name != 'dev'"],
    )
    inputs: Annotated[dict[str, JsonValue], AfterValidator(check_input_names)] = Field(
        default_factory=dict,
        description="values for the driver, rendered per environment (`${{ ... }}`)",
        examples=[{"node_count": "${{ vars.node_count }}"}],
    )
    driver: Driver = Field(description="how the component is planned and applied")
    timeout: PositiveSeconds = Field(
        default=900.0, description="limit of one driver call", examples=["15m"]
    )
    retry: RetryPolicy = Field(
        default_factory=_default_retry, description="tries of a failing driver call"
    )
    on_failure: Literal["rollback", "stop", "continue"] = Field(
        default="rollback",
        description="when it fails: re-apply what the run changed as it was before, stop the"
        " run, or go on with the components that do not depend on it (docs/runs.md)",
        examples=["stop"],
    )
    sensitive_outputs: list[str] = Field(
        default_factory=list,
        description="outputs stored encrypted and shown as ***; inputs rendered from them too",
        examples=[["admin_password"]],
    )


class Component(Strict):
    api_version: Literal["gitopsd.io/v1"] = Field(alias="apiVersion", description=_API_VERSION)
    kind: Literal["Component"] = Field(description="a component's manifest")
    metadata: ComponentMetadata = Field(description="its name and layer")
    spec: ComponentSpec = Field(description="what it needs and how it is applied")

    @property
    def name(self) -> str:
        return self.metadata.name


# --- Environment -----------------------------------------------------------------------------


class Promotion(Strict):
    from_: Name | None = Field(
        default=None,
        alias="from",
        description="upstream environment; none = the branch head",
        examples=["staging"],
    )
    auto: bool = Field(
        default=False, description="promote by itself once the upstream verified a revision"
    )
    soak: Seconds = Field(
        default=0.0,
        description="how long the upstream must have held the revision verified first",
        examples=["30m"],
    )


class Approvals(Strict):
    required: int = Field(
        default=0, ge=0, description="distinct approvers before apply; 0 = none", examples=[2]
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve; empty = anyone with the approve role",
        examples=[["alice", "bob"]],
    )
    forbid_author: bool = Field(
        default=False, description="the revision's commit author may not approve it"
    )
    authenticated: bool = Field(
        default=False,
        description="only approvals made with an API token count (the API, the dashboard "
        "logged in with a token, or `gitopsd approve --server`); a self-declared "
        "`approve --as` is refused",
    )


class Gate(Strict):
    name: Name = Field(description="names it in runs and metrics", examples=["smoke"])
    command: Command = Field(
        description="run from the root of the revision's checkout",
        examples=[["./checks/smoke.sh"]],
    )
    timeout: PositiveSeconds = Field(default=300.0, description="limit of one try", examples=["5m"])
    retries: int = Field(
        default=0, ge=0, le=100, description="tries after the first fails", examples=[1]
    )


class Window(Strict):
    kind: Literal["allow", "deny"] = Field(
        description="deny: no applies while open; allow: applies only while one is open"
    )
    schedule: Cron = Field(description="cron of the window's start", examples=["0 18 * * 5"])
    duration: PositiveSeconds = Field(description="how long it stays open", examples=["62h"])
    timezone: Timezone = Field(
        default="UTC", description="IANA timezone of the schedule", examples=["Europe/Berlin"]
    )


class DriftPolicy(Strict):
    schedule: Cron | None = Field(
        default=None,
        description="cron of scheduled drift checks; none = no scheduled checks",
        examples=["*/30 * * * *"],
    )
    remediate: bool = Field(default=False, description="re-apply drifted components by itself")


class ComponentSelection(Strict):
    include: list[str] | None = Field(
        default=None,
        description="component or layer names; none = all",
        examples=[["network", "clusters"]],
    )


class EnvironmentSpec(Strict):
    promotion: Promotion = Field(
        default_factory=Promotion, description="where its revisions come from"
    )
    approvals: Approvals = Field(
        default_factory=Approvals, description="who must approve a revision"
    )
    gates: list[Gate] = Field(
        default_factory=list,
        description="checks after apply; all pass = verified",
        examples=[[{"name": "smoke", "command": ["./checks/smoke.sh"]}]],
    )
    windows: list[Window] = Field(
        default_factory=list,
        description="when applies may (allow) or may not (deny) start",
        examples=[[{"kind": "deny", "schedule": "0 18 * * 5", "duration": "62h"}]],
    )
    drift: DriftPolicy = Field(default_factory=DriftPolicy, description="scheduled drift checks")
    variables: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="values components read as `${{ vars.NAME }}`",
        examples=[{"region": "westeurope", "node_count": 5}],
    )
    overrides: dict[Name, dict[str, JsonValue]] = Field(
        default_factory=dict,
        description="per-component variables, over `variables`",
        examples=[{"clusters": {"node_count": 7}}],
    )
    components: ComponentSelection = Field(
        default_factory=ComponentSelection, description="which components it has"
    )
    parallelism: int = Field(
        default=4, ge=1, le=1024, description="components applied at once", examples=[2]
    )
    prune: bool = Field(
        default=False, description="destroy components deployed here that it no longer has"
    )
    run_timeout: PositiveSeconds | None = Field(
        default=None,
        description="a whole run's limit; past it the run stops and fails",
        examples=["2h"],
    )


class EnvironmentMetadata(Strict):
    name: Name = Field(description="the environment's name: its file's stem", examples=["prod"])


class Environment(Strict):
    api_version: Literal["gitopsd.io/v1"] = Field(alias="apiVersion", description=_API_VERSION)
    kind: Literal["Environment"] = Field(description="an environment's manifest")
    metadata: EnvironmentMetadata = Field(description="its name")
    spec: EnvironmentSpec = Field(
        default_factory=EnvironmentSpec, description="over gitopsd.yaml `defaults`"
    )

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

    name: Name = Field(
        description="names it in logs and in gitopsd_notifications_total", examples=["team-chat"]
    )
    url_env: Annotated[str, AfterValidator(check_env_name)] = Field(
        description="environment variable of the daemon holding the webhook URL",
        examples=["SLACK_WEBHOOK_URL"],
    )
    format: Literal["json", "slack"] = Field(
        default="json", description="json: gitopsd's own body; slack: an incoming-webhook body"
    )
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(DEFAULT_NOTIFICATION_EVENTS),
        min_length=1,
        description="what it is told about",
        examples=[["run_failed", "approval_pending"]],
    )
    environments: list[Name] | None = Field(
        default=None,
        description="only these environments (default: every one)",
        examples=[["staging", "prod"]],
    )
    timeout: PositiveSeconds = Field(default=5.0, description="per delivery attempt")
    retry: RetryPolicy = Field(
        default_factory=_notification_retry, description="tries of a failing delivery"
    )


# --- gitopsd.yaml ----------------------------------------------------------------------------


MiB = 1024 * 1024
TiB = 1024**4  # the largest size limit: past it a limit is a typo, not a limit


class Limits(Strict):
    """How much one commit may make gitopsd read and hold, checked from git's sizes before
    anything is read: an oversized file is refused without being parsed (`oversized.py`).
    Sizes are a number of bytes or a string such as `512KiB` or `2MiB`, at most 1 TiB."""

    max_file_bytes: ByteSize = Field(
        default=ByteSize(MiB),
        gt=0,
        le=TiB,
        description="the largest one manifest file may be",
        examples=["512KiB"],
    )
    max_repository_bytes: ByteSize = Field(
        default=ByteSize(64 * MiB),
        gt=0,
        le=TiB,
        description="all manifest files of a commit together",
        examples=["128MiB"],
    )
    max_files: int = Field(
        default=20_000,
        gt=0,
        le=2**31,
        description="manifest files in one commit",
        examples=[50_000],
    )


class RepoSettings(Strict):
    """Optional `gitopsd.yaml` at the repo root: the layer order, the environment template and
    the notifications."""

    api_version: Literal["gitopsd.io/v1"] = Field(
        default="gitopsd.io/v1", alias="apiVersion", description=_API_VERSION
    )
    kind: Literal["Settings"] = Field(default="Settings", description="the repository's settings")
    layers: list[Name] = Field(
        default_factory=lambda: list(DEFAULT_LAYERS),
        min_length=1,
        description="layer order, lowest first; a component depends on its own or lower layers",
        examples=[["network", "clusters", "addons", "platform"]],
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="environment template: an Environment `spec` every environment inherits",
        examples=[{"parallelism": 2, "variables": {"domain": "example.test"}}],
    )
    notifications: list[Notification] = Field(
        default_factory=list,
        description="webhooks told about runs, approvals and drift",
        examples=[[{"name": "team-chat", "url_env": "SLACK_WEBHOOK_URL", "format": "slack"}]],
    )
    limits: Limits = Field(default_factory=Limits, description="sizes one commit may reach")
