"""What gitopsd knows about the world: environments, components, runs, steps and events.

These records are what the state store keeps and what `status`, `runs` and `history` show.
They are plain values; the store serialises them and the engine derives new ones from old.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue


def in_utc(moment: datetime) -> datetime:
    """Every time gitopsd records is timezone-aware and kept in UTC, so times compare."""
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: gitopsd records UTC times")
    return moment.astimezone(UTC)


Moment = Annotated[datetime, AfterValidator(in_utc)]


class Record(BaseModel):
    """Immutable; change a record with `model_copy(update=...)` and save the copy.

    Validators are built on first use (`defer_build`): each command reads a few kinds of
    record, and building all of them at import cost every start milliseconds."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class EnvironmentStatus(StrEnum):
    UNKNOWN = "unknown"
    RECONCILING = "reconciling"
    VERIFIED = "verified"
    FAILED = "failed"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_WINDOW = "waiting_window"


class ComponentStatus(StrEnum):
    UNKNOWN = "unknown"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class DriftStatus(StrEnum):
    UNKNOWN = "unknown"
    IN_SYNC = "in_sync"
    DRIFTED = "drifted"
    ERROR = "error"


class RunAction(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    DESTROY = "destroy"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunPhase(StrEnum):
    """A run moves forward, and on a failure with `on_failure: rollback`, compensates."""

    FORWARD = "forward"
    ROLLBACK = "rollback"


class StepAction(StrEnum):
    """What a step does to one component; `rollback` re-applies the previous revision; a
    `gate` step runs one of the environment's gates (its `component` is the gate's name)."""

    PLAN = "plan"
    APPLY = "apply"
    HEALTH = "health"
    DESTROY = "destroy"
    ROLLBACK = "rollback"
    GATE = "gate"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class EnvironmentState(Record):
    name: str
    revision: str | None = None
    previous_revision: str | None = Field(
        default=None, description="the verified revision before `revision`; rollback target"
    )
    status: EnvironmentStatus = EnvironmentStatus.UNKNOWN
    updated_at: Moment


class ComponentState(Record):
    """The last applied desired state of one component in one environment."""

    environment: str
    name: str
    revision: str
    fingerprint: str
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    status: ComponentStatus = ComponentStatus.APPLIED
    drift: DriftStatus = DriftStatus.UNKNOWN
    drift_checked_at: Moment | None = None
    drift_summary: str = Field(default="", description="the check's output, capped, redacted")
    updated_at: Moment


class Run(Record):
    id: str
    environment: str
    revision: str
    action: RunAction
    components: list[str] | None = Field(default=None, description="requested subset")
    status: RunStatus = RunStatus.PENDING
    trigger: str = "cli"
    actor: str = "local"
    previous_revision: str | None = None
    phase: RunPhase = RunPhase.FORWARD
    forced: bool = False
    cancel_requested: bool = False
    error: str | None = None
    created_at: Moment
    started_at: Moment | None = None
    finished_at: Moment | None = None


class Step(Record):
    """One driver call of a run (all attempts of it), written before and after it runs."""

    run_id: str
    index: int
    component: str
    action: StepAction
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    revision: str
    fingerprint: str | None = None
    previous_state: ComponentState | None = Field(
        default=None, description="the component before this step: what a rollback restores"
    )
    exit_code: int | None = None
    output: str = ""
    error: str | None = None
    started_at: Moment | None = None
    finished_at: Moment | None = None


class Event(Record):
    """One line of the append-only audit trail: who did what, when and why."""

    id: int | None = None
    at: Moment
    environment: str | None = None
    run_id: str | None = None
    actor: str = "gitopsd"
    kind: str
    message: str
    data: dict[str, JsonValue] = Field(default_factory=dict)


class ApprovalRecord(Record):
    """One person's approval of one revision for one environment (SPEC 3.3). Approvals of
    another revision never count: a newer candidate starts from none."""

    environment: str
    revision: str
    approver: str
    email: str | None = None
    at: Moment


class DriverProcess(Record):
    """A driver's process group while its call runs, recorded as soon as it starts: if the
    process that started it dies, whoever takes the environment over ends it before any step
    runs again, rather than starting the component a second time beside it.

    `pid` is the group leader's pid and the group's id; `started` its start time in clock
    ticks since boot (/proc/<pid>/stat field 22), so a pid reused by another process is never
    taken for it (None where the system does not say)."""

    host: str
    pid: int
    started: int | None
    environment: str
    component: str
    action: str
    run_id: str
    recorded_at: Moment
