"""What gitopsd knows about the world: environments, components, runs, steps and events.

These records are what the state store keeps and what `status`, `runs` and `history` show.
They are plain values; the store serialises them and the engine derives new ones from old.
"""

from __future__ import annotations

import re
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
    record, and building all of them at import cost every start milliseconds.

    Read back from JSON without pydantic's cache of strings (`cache_strings`), which keeps
    for good, process-wide, the last string shorter than 64 bytes that fell into each of its
    16,384 slots (about 1 MB when full). A daemon reads records with new ids and messages
    every commit (the outbox's events, the open requests), and the cache was the one thing
    a trace of 400 commits found growing with them: about nine strings a commit
    (benchmarks/README.md, "pydantic's cache of strings")."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True, cache_strings=False)


class EnvironmentStatus(StrEnum):
    UNKNOWN = "unknown"
    RECONCILING = "reconciling"
    VERIFIED = "verified"
    FAILED = "failed"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_WINDOW = "waiting_window"
    SUSPENDED = "suspended"
    BLOCKED = "blocked"  # its candidate's commit is not signed by a trusted signer (SPEC 9)


class ComponentStatus(StrEnum):
    UNKNOWN = "unknown"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    # deployed, but no longer part of its environment at the head (deleted, or excluded by
    # `when` or `components.include`); shown by status, never stored
    ORPHANED = "orphaned"


class DriftStatus(StrEnum):
    UNKNOWN = "unknown"
    IN_SYNC = "in_sync"
    DRIFTED = "drifted"
    ERROR = "error"


class RunAction(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    DESTROY = "destroy"


class RequestKind(StrEnum):
    """What a request asks for: the kinds the queue carries to a worker (plan, apply,
    destroy, resume, promote, rollback, drift) and remediate, only ever admitted where a drift
    check asks for it. Stored in request
    records and shown by the API as these strings."""

    PLAN = "plan"
    APPLY = "apply"
    DESTROY = "destroy"
    RESUME = "resume"  # finish the runs a stopped process left
    PROMOTE = "promote"  # take the upstream's newest verified, soaked revision
    DRIFT = "drift"  # check for drift, remediating where the manifest says so
    ROLLBACK = "rollback"
    REMEDIATE = "remediate"

    @property
    def runs_under_its_id(self) -> bool:
        """Whether the run such a request starts takes the request's id, as the id the API
        handed out (plan, apply, destroy, promote, rollback). A drift check is no run (its
        repair is a run of its own), and a resume finishes runs that have theirs."""
        return self not in (RequestKind.DRIFT, RequestKind.RESUME, RequestKind.REMEDIATE)


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


class VerifiedHold(Record):
    """The environment held `revision` verified from `since` until `until` (None: still).
    A row of its own in the store (StateStore.list_holds), not part of the environment's
    record: a commit adds or ends one, and reading the record parses none of them."""

    revision: str
    since: Moment
    until: Moment | None = None


class PendingApproval(Record):
    """The revision waiting for approvals (the approvals themselves are their own records),
    and who asked to promote it: a person (`asked_by`), whose promotion of exactly that
    revision the completing approval starts, or the environment's own automatic promotion
    (None), which counts only while the environment promotes automatically."""

    revision: str
    required: int
    since: Moment
    asked_by: str | None = None

    def counts(self, *, auto: bool) -> bool:
        """Whether a promotion still waits for it: someone asked, or `auto` still asks."""
        return auto or self.asked_by is not None


class CurrentWait(Record):
    """What holds the environment now: `kind` is an admission wait (waiting_approval,
    waiting_window, waiting_soak, suspended) or `blocked` (an untrusted commit, which
    no wait ends: a trusted one replaces it), until when if known."""

    kind: str
    revision: str | None = None
    reason: str
    until: Moment | None = None
    since: Moment


# the longest suspension reason, from the command line and the API alike: it is shown by
# status and in every event of the environment's history, so it stays a sentence or two
MAX_REASON_LENGTH = 1000
# what a line shown to people may not hold: a control character (category Cc: a line break
# forges a log line, an escape sequence drives the reader's terminal) or a mark that reorders
# how text is displayed (U+202E shows what follows backwards). Refused in new reasons
# (`reason_problem`), escaped where text stored before is shown (`escape_unsafe`).
UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # every control character (Cc)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # every bidirectional mark and override
)


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}  # as Python writes them


def escape_unsafe(text: str) -> str:
    """`text` with every control character and bidirectional mark (`UNSAFE_CHARACTERS`)
    written as an escape (`\\x1b`, `\\n`, `\\u202e`): what every line or page showing stored
    text (a suspension's reason, an event's message) goes through once, in the terminal and
    the dashboard. New reasons cannot hold them (`reason_problem`), but one stored before
    that rule still may, and shown as it is it would clear or drive the reader's terminal,
    forge a line, or hide what it says (U+202E shows what follows backwards, on a page too)."""
    return UNSAFE_CHARACTERS.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    character = found.group()
    named = _NAMED_ESCAPES.get(character)
    code = ord(character)
    return named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def reason_problem(reason: str) -> str | None:
    """Why `reason` cannot be a suspension's reason, or None. It is one line shown in
    terminals (status, history), logs and pages, so besides its length it may hold no
    control character (a line break would forge a log line, an escape sequence drive the
    reader's terminal) nor a bidirectional override (which hides what the text says)."""
    if len(reason) > MAX_REASON_LENGTH:
        return f"{len(reason):,} characters, over {MAX_REASON_LENGTH:,}"
    unsafe = UNSAFE_CHARACTERS.search(reason)
    if unsafe is not None:
        return f"holds the control character U+{ord(unsafe.group()):04X}: one line of text"
    return None


class Suspension(Record):
    """Automatic work is held while this is set (SPEC 3.6): who suspended, why, since when;
    `run_id` the rollback that suspended it (promoting.roll_back), None for a person's."""

    reason: str = ""
    actor: str
    since: Moment
    run_id: str | None = None


class EnvironmentState(Record):
    """One environment's record. The promotion state lives here, written where it changes
    (run start and finish, admission), not replayed from history; the revisions it verified
    are the store's holds (StateStore.list_holds), written in the same transactions."""

    name: str
    revision: str | None = None
    previous_revision: str | None = Field(
        default=None, description="the verified revision before `revision`; rollback target"
    )
    status: EnvironmentStatus = EnvironmentStatus.UNKNOWN
    updated_at: Moment
    pending_approval: PendingApproval | None = None
    waiting: CurrentWait | None = None
    suspension: Suspension | None = None

    def pending_for(self, *, auto: bool) -> PendingApproval | None:
        """The pending approval a promotion still waits for (PendingApproval.counts): one
        recorded by the environment's own promotion no longer counts once `auto` is off."""
        pending = self.pending_approval
        return pending if pending is not None and pending.counts(auto=auto) else None

    @property
    def shown_status(self) -> EnvironmentStatus:
        """The status to show: `suspended` while suspended, whatever the last run left."""
        return EnvironmentStatus.SUSPENDED if self.suspension else self.status


class ComponentState(Record):
    """The last applied desired state of one component in one environment."""

    environment: str
    name: str
    revision: str
    fingerprint: str
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    sensitive_outputs: list[str] = Field(
        default_factory=list, description="outputs kept encrypted at rest and shown as ***"
    )
    sensitive_inputs: list[str] = Field(
        default_factory=list,
        description="inputs never kept in clear at rest (encrypted, or hashed: `hashed_inputs`)"
        " and shown as ***: secret-named ones, and those rendered from a dependency's"
        " sensitive outputs",
    )
    hashed_inputs: list[str] = Field(
        default_factory=list,
        description="of those, the secret-named ones rendered from the repository alone: kept"
        " only as a keyed hash, rendered again from the manifests at `revision` when needed",
    )
    status: ComponentStatus = ComponentStatus.APPLIED
    drift: DriftStatus = DriftStatus.UNKNOWN
    drift_checked_at: Moment | None = None
    drift_summary: str = Field(default="", description="the check's output, capped, redacted")
    updated_at: Moment


HASHED = "$hashed"  # a value kept only as its keyed hash: {"$hashed": "hmac-sha256:..."}


def kept_hash(value: object) -> str | None:
    """The keyed hash a record keeps in place of the value of one of its `hashed_inputs`, if
    `value` is such a stand-in (adapters/sealed_store.py writes them; the value is rendered
    again from the manifests when a call needs it: runtime/runs/recalling.py)."""
    if isinstance(value, dict) and len(value) == 1:
        found = value.get(HASHED)
        return found if isinstance(found, str) else None
    return None


REMEDIATION_TRIGGER = "remediation"  # the trigger of a run that repairs drift where it is


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
    plan: str | None = Field(default=None, description="the saved plan it applies")
    error: str | None = None
    created_at: Moment
    started_at: Moment | None = None
    finished_at: Moment | None = None

    @property
    def brings_a_revision(self) -> bool:
        """An apply of the environment at a revision chosen for it: of the whole of it, or
        of a saved plan (whose components are the plan's changes), not one of some
        components, nor a drift remediation (which re-applies the revision it is at)."""
        chosen = not self.components or self.plan is not None
        applied = self.action is RunAction.APPLY and chosen
        return applied and self.trigger != REMEDIATION_TRIGGER


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
    authenticated: bool = Field(
        default=False,
        description="made with an API token (the daemon's API, `--server`); false when "
        "self-declared (`approve --as NAME` on the store)",
    )
    token: str | None = Field(default=None, description="the token's name, when authenticated")


class PlanDecision(StrEnum):
    """What a saved plan says about one component."""

    CHANGE = "change"
    NO_CHANGE = "no_change"
    DESTROY = "destroy"


class PlannedChange(Record):
    """One component of a saved plan: its decision and the fingerprint it was decided at
    (None while its inputs waited for a dependency's new outputs)."""

    component: str
    decision: PlanDecision
    fingerprint: str | None = None


class SavedPlan(Record):
    """A plan kept to be applied later, exactly (`plan --save`, `apply --plan ID`).

    It is valid only against the state it was made from: `state_digest` sums up the
    environment's recorded revision and its components' revisions, fingerprints and
    statuses, and `candidate` is the revision the environment would have taken then (the
    branch head, or what its upstream verified). `applied_at` is set once, by the apply that
    used it; a used plan is stale."""

    id: str
    environment: str
    revision: str
    candidate: str | None = None
    components: list[PlannedChange] = Field(default_factory=list)
    requested: list[str] | None = Field(default=None, description="the plan's --components")
    state_digest: str
    actor: str = "local"
    created_at: Moment
    applied_at: Moment | None = None
    applied_by: str | None = Field(default=None, description="the apply run, if one ran")

    @property
    def changes(self) -> list[str]:
        """The components this plan changes, in plan order."""
        return [c.component for c in self.components if c.decision is PlanDecision.CHANGE]

    @property
    def destroys(self) -> list[str]:
        """The orphans this plan destroys (its environment prunes), in plan order."""
        return [c.component for c in self.components if c.decision is PlanDecision.DESTROY]

    @property
    def has_work(self) -> bool:
        return bool(self.changes or self.destroys)


class RequestStatus(StrEnum):
    """Where a request for work stands (SPEC 3.6): open until it is done or superseded."""

    QUEUED = "queued"
    WAITING = "waiting"
    RETRYING = "retrying"
    RUNNING = "running"
    SUPERSEDED = "superseded"
    DONE = "done"

    @property
    def is_open(self) -> bool:
        return self not in (RequestStatus.SUPERSEDED, RequestStatus.DONE)


class Request(Record):
    """A request for work (a commit, an API call, a schedule...), recorded before anything
    acts on it, so that a crash or a transient fault never loses it and its id (the id of the
    run it starts) is known from the moment it is handed out."""

    id: str
    environment: str
    action: RequestKind
    revision: str | None = None
    components: list[str] | None = None
    trigger: str = "commit"
    actor: str = "gitopsd"
    priority: int = 1
    plan: str | None = Field(default=None, description="the saved plan it applies, if any")
    forced: bool = Field(default=False, description="overrides a change window (SPEC 3.3)")
    remediate: bool = Field(
        default=False, description="a drift check a person asked to repair drift (not held)"
    )
    status: RequestStatus = RequestStatus.QUEUED
    reason: str | None = Field(default=None, description="why it waits, while it waits")
    last_error: str | None = None
    attempts: int = 0
    next_attempt_at: Moment | None = None
    outcome: str | None = Field(default=None, description="what came of it, once done")
    superseded_by: str | None = None
    created_at: Moment
    updated_at: Moment


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
