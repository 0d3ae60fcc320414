"""The interfaces the run engine needs from the outside world (ports; adapters implement them).

The engine plans and executes against these protocols only, so it can be tested with real
adapters (SQLite, subprocesses, git) or in-memory ones, and never imports a library that
touches the world itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from gitopsd.model.manifests import DriverSettings
from gitopsd.model.state import (
    ApprovalRecord,
    ComponentState,
    DriverProcess,
    EnvironmentState,
    Event,
    Request,
    Run,
    SavedPlan,
    Step,
    VerifiedHold,
)


class Clock(Protocol):
    """Wall-clock time (timezone-aware UTC) and sleeping; injected so tests do not wait."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class CancelSignal(Protocol):
    """Set when the work in progress should stop (a `threading.Event` is one)."""

    def is_set(self) -> bool: ...


OnOutput = Callable[[str], None]


@dataclass(frozen=True)
class StepTry:
    """Which step of a run a driver call is a try of. `key` names the step, the same for
    each of its tries, in this process or the one that resumes it; `since` is when its first
    try began; `earlier` says a try of it began before this one (a retry, or the resume of a
    step a stopped gitopsd left running). A runner whose work outlives gitopsd (a dispatched
    workflow run, which no process group holds) marks that work with `key`, and ends what an
    earlier try left running before it starts again: two calls for one component never
    overlap (SPEC 3.4)."""

    key: str
    since: datetime
    earlier: bool


@dataclass(frozen=True)
class DriverCall:
    """One invocation of a component's driver (SPEC section 4): its `driver` settings, the
    `driver:` block as its type validated it, whose `type` picks the runner (`engine.drivers`).

    `argv` and `env` are what a command runs: a gate's command (no `driver`), or what the
    command driver makes of its settings for the action (`adapters.command_driver`)."""

    cwd: Path  # the component's folder in the read-only checkout of `revision`
    environment: str
    component: str
    revision: str
    action: str  # plan, apply, destroy, check or health (or gate)
    inputs: Mapping[str, Any]
    state_dir: Path  # kept per environment and component across runs
    timeout: float  # seconds
    driver: DriverSettings | None = None  # None: run `argv` as a command (a gate)
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # the command's own variables
    # inputs whose values are redacted from the output whatever their names (runtime/sensitivity)
    sensitive_inputs: frozenset[str] = frozenset()
    # clear values redacted from the output too: the sensitive outputs the component (or, for
    # a gate, any component) made, which a check, plan or health probe may print
    secrets: frozenset[str] = frozenset()
    # the `${{ secrets.NAME }}` the component's manifest references: the driver runner puts
    # their values in this call's inputs and env, and nowhere else (engine/secret_references)
    secret_names: frozenset[str] = frozenset()
    # told what the driver prints as it prints it, redacted and capped as `DriverResult.output`
    # (the live view of a running step); a runner that cannot tell before the end never calls it
    on_output: OnOutput | None = field(default=None, compare=False, repr=False)
    # the step this call is a try of (None: a call outside a run's steps, e.g. a drift check)
    step: StepTry | None = field(default=None, compare=False)

    @property
    def driver_type(self) -> str:
        """The name of the driver type that runs this call (a gate's command: `command`)."""
        return "command" if self.driver is None else self.driver.type


@dataclass(frozen=True)
class DriverResult:
    """How a driver call ended. `exit_code` is None when it was killed or never started."""

    exit_code: int | None
    output: str = ""  # stdout and stderr interleaved, size-capped, secrets redacted
    outputs: dict[str, Any] | None = None  # apply only: the JSON object it wrote
    duration: float = 0.0
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None  # why the call failed beyond its exit code (bad outputs JSON...)
    final: bool = False  # the call can never start as it is (values too large): not retried

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.error is None


@dataclass(frozen=True)
class StartedDriver:
    """A driver process just started: its pid, which is also its process group's id, and its
    start time in clock ticks since boot (None where the system does not say), which tells
    it apart from a later process given the same pid."""

    pid: int
    started: int | None


OnStarted = Callable[[StartedDriver], None]


class DriverRunner(Protocol):
    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,
    ) -> DriverResult:
        """Run `call` to its end; `on_started` is told of its process group as soon as it
        exists (runners without processes never call it)."""
        ...

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        """Every call, at most `parallelism` at once; the results in the calls' order.
        `on_done(index, result)` is called as each call ends (for progress)."""
        ...


class SecretSource(Protocol):
    """Where `${{ secrets.NAME }}` values come from (adapters/secrets.py): asked at each
    driver call, and by planning for the keyed hash a fingerprint holds, never stored."""

    def value(self, name: str) -> str:
        """The secret's value; MissingSecretError, naming where it looked, if there is none."""
        ...


class Checkouts(Protocol):
    """Read-only trees of revisions, from which drivers and gates run."""

    def path(self, revision: str) -> Path: ...


# not in gitopsd.errors: a signal that another daemon leads, not an error (see the docstring)
class FencedError(BaseException):
    """A write refused because the process making it no longer leads: since it was elected,
    another daemon sharing the store was elected after it (a newer epoch). Nothing of the
    write, nor of the transaction around it, is recorded.

    A BaseException, like `runtime.runs.steps.Interrupted`, so that no `except Exception` on the
    way up records it as a failure: the run is left exactly as a crash would leave it, for the
    current leader to resume."""


OnFenced = Callable[[FencedError], None]


class Fencing(Protocol):
    """What a store shared by several daemons (PostgreSQL) offers their leadership: the
    database they campaign in, and views of the store that refuse the writes of a leader once
    another one is elected after it. A store of one process's own has none (`fencing()`)."""

    @property
    def url(self) -> str:
        """The database the daemons sharing the store elect their leader in."""
        ...

    def fenced(self, epoch: int, *, on_fenced: OnFenced | None = None) -> StateStore:
        """A view of the store whose writes succeed only while `epoch` leads (0: never);
        `on_fenced` hears of each write refused, before its FencedError is raised."""
        ...


@dataclass(frozen=True)
class Term:
    """One process's lead of the daemons sharing a store: its epoch, and who led before it
    (None: nobody ever did)."""

    epoch: int
    previous: str | None


class Election(Protocol):
    """The campaign of `holder` for the lead (see `runtime.service.leadership`)."""

    holder: str

    def campaign(self) -> Term | None:
        """Try once to lead; None while another process leads or the store does not answer."""
        ...

    def confirm(self, epoch: int) -> bool:
        """Whether this process still leads at `epoch` (called every heartbeat)."""
        ...

    def leader(self) -> str | None:
        """Who leads now, if anyone."""
        ...

    def resign(self) -> None: ...


class StateStore(Protocol):
    """Durable state. Each method is atomic on its own; calls made inside `transaction()`
    (from the same thread) commit or roll back together. A store shared by several daemons
    raises `FencedError` from the writes of one that no longer leads."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...

    def fencing(self) -> Fencing | None:
        """How the store fences a deposed leader's writes; None for a store of one process's
        own (SQLite, memory), where one process always leads."""
        ...

    # environments
    def get_environment(self, name: str) -> EnvironmentState | None: ...

    def list_environments(self) -> list[EnvironmentState]: ...

    def save_environment(self, state: EnvironmentState) -> None: ...

    # the revisions each environment held verified (runtime.records.promotion_records
    # decides when one starts or ends; a store only keeps them)
    def list_holds(self, environment: str, *, newest: int | None = None) -> list[VerifiedHold]:
        """The environment's holds in the order they were added (oldest first); `newest`:
        only the newest that many (the open one, if any, is the newest)."""
        ...

    def add_hold(self, environment: str, hold: VerifiedHold, *, keep: int) -> None:
        """Add `hold` as the environment's newest, and delete its holds but the newest `keep`
        (atomic); no other environment's holds change."""
        ...

    def end_hold(self, environment: str, *, at: datetime) -> None:
        """End the environment's newest hold at `at` if it is still open; nothing otherwise."""
        ...

    # components
    def get_component(self, environment: str, name: str) -> ComponentState | None: ...

    def list_components(
        self, environment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ComponentState]:
        """The environment's component states by name; `after`: only those with a greater
        name; `limit`: at most that many (a page: a run's start goes through a thousand
        states without holding them all)."""
        ...

    def component_names(self, environment: str) -> list[str]:
        """The names of the components recorded in `environment`, sorted: what finding its
        orphans needs, without reading (and building) the state of every component."""
        ...

    def save_component(self, state: ComponentState) -> None: ...

    def save_components(self, states: Sequence[ComponentState]) -> None:
        """`save_component` of each, all or none: a drift check stores a result for every
        component it checked, and one statement for all of them costs far less than one
        call each."""
        ...

    def delete_component(self, environment: str, name: str) -> None: ...

    # runs and their steps
    def save_run(self, run: Run) -> None: ...

    def get_run(self, run_id: str) -> Run | None: ...

    def list_runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> list[Run]:
        """Up to `limit` runs, newest first (by creation, then id), without their steps;
        `before`: only those after the run with that (created_at, id) in this order, which is
        the next page whatever runs started since (the SQL stores answer with LIMIT);
        `status`, `action`: only the runs with that status or action (their values)."""
        ...

    def unfinished_runs(self, environment: str | None = None) -> list[Run]: ...

    def save_step(self, step: Step) -> None: ...

    def save_steps(self, steps: Iterable[Step]) -> None:
        """`save_step` of each, all or none: a run records all of its steps when it starts,
        and 1,000 steps must not cost 1,000 statements before the first driver starts.
        `steps` are gone through once, each turned into its record as it comes: a run hands
        them over as it makes them, so that thousands of them are never held at once."""
        ...

    def list_steps(
        self, run_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        """The run's steps by index; `after`: only those with a greater index; `limit`: at
        most that many (a page of a run with thousands of steps)."""
        ...

    def prune_runs(
        self, environment: str, *, created_before: datetime, keep: int, limit: int
    ) -> int:
        """Delete at most `limit` rows of `environment`'s finished runs created before
        `created_before` or older than its newest `keep` runs: their steps first, then each
        run once it has no step left. Atomic; returns how many rows it deleted (0: nothing is
        left to prune). Unfinished runs are never deleted."""
        ...

    def history_scopes(self) -> list[str | None]:
        """Every environment with runs or events (None stands for events of no environment)."""
        ...

    # the audit trail
    def append_event(self, event: Event) -> Event: ...

    def list_events(
        self,
        environment: str | None = None,
        *,
        run_id: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[Event]:
        """Newest first; `before`: only events with a smaller id (the next page)."""
        ...

    def prune_events(
        self, environment: str | None, *, before: datetime, keep: int, up_to: int, limit: int
    ) -> int:
        """Delete at most `limit` events of `environment` (None: those of no environment)
        with an id at most `up_to` (what has been delivered) that happened before `before`
        or are older than its newest `keep`; returns how many it deleted."""
        ...

    def list_events_after(self, after_id: int, *, limit: int) -> list[Event]:
        """Up to `limit` events with an id above `after_id`, oldest first: what the outbox
        delivers next. An event must never appear here after a later one did (a backend whose
        ids can commit out of order must hold later ones back), or the outbox skips it."""
        ...

    # named positions in the audit trail (the outbox's cursor)
    def get_cursor(self, name: str) -> int | None:
        """The value saved under `name`, or None if none was ever saved."""
        ...

    def save_cursor(self, name: str, value: int) -> None: ...

    # approvals of a revision for an environment
    def add_approval(self, approval: ApprovalRecord) -> bool:
        """Record it; False (and nothing changes) if that approver approved that revision
        for that environment already."""
        ...

    def replace_approval(self, approval: ApprovalRecord) -> None:
        """Record it in place of that approver's earlier approval of that revision for that
        environment, if any: one the rules no longer count (given by name before the
        environment required tokens), which the approver gives again."""
        ...

    def list_approvals(self, environment: str, revision: str) -> list[ApprovalRecord]:
        """The approvals of `revision` for `environment`, oldest first."""
        ...

    # saved plans (`plan --save`), each applied at most once
    def save_plan(self, plan: SavedPlan) -> None: ...

    def get_plan(self, plan_id: str) -> SavedPlan | None: ...

    def claim_plan(self, plan_id: str, *, at: datetime, run_id: str | None) -> bool:
        """Mark the plan applied (by `run_id`, None when nothing ran) at `at`; False, and
        nothing changes, if it is unknown or some apply claimed it first. Of several
        processes claiming the same plan at once, exactly one gets True."""

    # requests for work, recorded before anything acts on them (SPEC 3.6)
    def save_request(self, request: Request) -> None:
        """Record `request`, or overwrite the record with its id (a change of status)."""
        ...

    def get_request(self, request_id: str) -> Request | None: ...

    def list_requests(
        self, environment: str | None = None, *, open_only: bool = False, limit: int = 1000
    ) -> list[Request]:
        """Requests oldest first (by creation, then id), the order they are taken in;
        `open_only`: those neither done nor superseded."""
        ...

    def forget_closed_requests(self, environment: str, *, keep: int) -> None:
        """Delete `environment`'s done and superseded requests but the newest `keep`: open
        ones are never deleted (their history is in the audit trail and the runs)."""
        ...

    # the one-run-per-environment lease
    def acquire_lease(
        self,
        environment: str,
        holder: str,
        *,
        now: datetime,
        ttl: float,
        takeover: str | None = None,
    ) -> bool:
        """Take or renew the lease until `now + ttl`. Succeeds when it is free, expired, held
        by `holder` already, or held by `takeover` (a holder known to be dead)."""
        ...

    def release_lease(self, environment: str, holder: str) -> None: ...

    def lease_holder(self, environment: str, *, now: datetime) -> str | None: ...

    # the process groups of running drivers, ended by whoever takes the environment over
    def save_driver_process(self, process: DriverProcess) -> None:
        """Record it (again: a record of the same host and pid is replaced)."""
        ...

    def list_driver_processes(self, environment: str) -> list[DriverProcess]:
        """The recorded driver processes of `environment`, oldest first."""
        ...

    def delete_driver_process(self, host: str, pid: int) -> None:
        """Forget it; nothing happens when it is not recorded."""
        ...

    def forget_driver_processes(self, run_id: str) -> None:
        """Forget every driver process recorded for `run_id` (the run has ended)."""
        ...
