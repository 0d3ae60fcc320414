"""One step of a run: written before it runs, the driver called with retries, written after.

Every driver call of a run goes through `StepRunner.call`, so all of them share the same
durability (the step is in the store, status running, before the process starts), the same
retry policy (full-jitter backoff, every try counted) and the same cancellation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitopsd.adapters.driver_output import redact_values, secret_texts
from gitopsd.adapters.encryption import KEY_VARIABLE, MARKER, is_sealed
from gitopsd.engine import secret_references
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.ports import (
    CancelSignal,
    Clock,
    DriverCall,
    DriverResult,
    DriverRunner,
    SecretSource,
    StateStore,
    StepTry,
)
from gitopsd.engine.retrying import Uniform, delay_before, has_tries_left
from gitopsd.engine.stepping import StepKey
from gitopsd.model.manifests import RetryPolicy
from gitopsd.model.state import ComponentState, Event, Run, Step, StepAction, StepStatus
from gitopsd.runtime.runs import orphan_drivers
from gitopsd.runtime.runs.live_output import LiveOutput
from gitopsd.runtime.runs.lookout import Lookout

WAIT_SLICE = 0.1
log = logging.getLogger("gitopsd.runs")


@dataclass
class DriverSlot:
    """A step's word with its walk about one driver: whether it may start at all (`granted`:
    not if the walk stopped while it waited for a slot), and whether it failed (`failed`,
    set by the step): a failed driver's slot is freed only once the walk has settled the
    step, so that the failure stops the walk before another driver takes the slot."""

    granted: bool = True
    failed: bool = False


# What this thread's walk does while one of its steps waits on a driver (True) or for its next
# try (False): it gives the driver one of its `parallelism` slots for its run, and may put
# another worker on the steps ready meanwhile (runtime/runs/walking.py).
Waiting = Callable[[bool], AbstractContextManager[DriverSlot]]
_waiting: ContextVar[Waiting] = ContextVar(
    "waiting", default=lambda _: contextlib.nullcontext(DriverSlot())
)


def waiting_on_driver() -> AbstractContextManager[DriverSlot]:
    """Held by a step from just before its driver starts until it exits: entering may wait
    for a free slot of the walk's `parallelism`."""
    return _waiting.get()(True)


def waiting_for_next_try() -> AbstractContextManager[DriverSlot]:
    """Held by a step between two tries: no driver runs, so it holds no slot."""
    return _waiting.get()(False)


@contextlib.contextmanager
def working_for(waiting: Waiting) -> Iterator[None]:
    """This thread's steps tell `waiting` when they wait, until the block ends."""
    token = _waiting.set(waiting)
    try:
        yield
    finally:
        _waiting.reset(token)


# not in gitopsd.errors: the walk takes it for a step that never started (back to pending)
class NotStartedError(Exception):
    """The walk stopped (a failure elsewhere, a cancel) while the step waited for a driver
    slot: its first try never started, and it is pending again, closed with the run."""


# not in gitopsd.errors: never reaches a user as such; the step that meets it is recorded as failed
class StepError(Exception):
    """A step that cannot even be attempted (the driver cannot run the action...)."""


# not in gitopsd.errors: a signal to stop, not an error (see the docstring)
class Interrupted(BaseException):
    """The process is stopping and its grace period is over: the drivers were stopped, and
    the run must be left exactly as a crash would leave it, resumable, with nothing more
    recorded. A BaseException, so that no `except Exception` records it as a failure."""


@dataclass(frozen=True)
class Either:
    """Set when either signal is: a driver stops on a cancel (recorded) or an interruption
    (not recorded); a run is interrupted by its process stopping or its lease being lost."""

    first: CancelSignal
    second: CancelSignal

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()


@dataclass
class Services:
    """The outside world a run talks to, and its cancellation flag."""

    store: StateStore
    drivers: DriverRunner
    clock: Clock
    state_root: Path  # GITOPSD_STATE_DIR of each component lives below it
    cancel: threading.Event = field(default_factory=threading.Event)
    # the process stops, or the run's lease was lost: the run is left as a crash leaves it
    interrupted: CancelSignal = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)  # start no new step
    uniform: Uniform = random.uniform
    # the keyed hash sensitive inputs enter fingerprints as (runtime/records/sensitivity.py); None:
    # no sealing store, inputs enter as they are
    digest: Callable[[bytes], str] | None = None
    secrets: SecretSource | None = None  # `${{ secrets.NAME }}` values, for those hashes
    # a revision's manifests: what an input kept only as a hash is rendered again from
    # (runtime/runs/recalling.py); None: no repository, no such input
    manifests: Callable[[str], Repository] | None = None
    # what the drivers of running steps printed so far (the live log view)
    live: LiveOutput = field(default_factory=LiveOutput)
    # looks for a stop of each walk in progress (a cancel, the timeout), from one thread
    lookout: Lookout = field(default_factory=Lookout)
    # One run decides its steps at a time, whatever its environment or action: deciding reads
    # every component's state (and an apply or plan renders every component's inputs), and a
    # commit going down the promotion chain had three environments doing it at once, the
    # daemon's high-water mark (benchmarks/README.md, memory). Walks still go side by side.
    deciding: threading.Lock = field(default_factory=threading.Lock)

    def check_interrupted(self) -> None:
        if self.interrupted.is_set():
            raise Interrupted

    def event(self, run: Run, kind: str, message: str, **data: Any) -> None:
        """Append to the audit trail, and log it (seen only where logging is configured)."""
        log.info(message, extra={"environment": run.environment, "run_id": run.id, "event": kind})
        self.store.append_event(
            Event(
                at=self.clock.now(),
                environment=run.environment,
                run_id=run.id,
                actor=run.actor,
                kind=kind,
                message=message,
                data=data,
            )
        )


class StepBook:
    """The steps of one run: those already recorded (when resuming) and new indexes.

    A run of a commit that changes one component of a thousand records the other 999, and
    their health checks, skipped as unchanged when it starts. Of those the book keeps the
    index and fingerprint alone (`unchanged`), and makes the step whole again when it is
    asked for: a run holds the steps it works on, not two thousand it never touches (three
    environments' runs go at once when a commit goes down the promotion chain).
    """

    def __init__(self, existing: list[Step]) -> None:
        self._steps = {(s.component, s.action): s for s in existing}
        self._next = max((s.index for s in existing), default=-1) + 1
        self._lock = threading.Lock()
        self._unchanged: dict[StepKey, tuple[int, str | None]] = {}
        self._run: tuple[str, str] = ("", "")  # the id and revision of the unchanged steps' run

    def find(self, component: str, action: StepAction) -> Step | None:
        with self._lock:
            step = self._steps.get((component, action))
            unchanged = self._unchanged.get((component, action))
        if step is not None or unchanged is None:
            return step
        return self._unchanged_step(component, action, *unchanged)

    def status(self, component: str, action: StepAction) -> StepStatus | None:
        """The step's status (None: not recorded), without making an unchanged step whole."""
        with self._lock:
            if (component, action) in self._unchanged:
                return StepStatus.SKIPPED
            step = self._steps.get((component, action))
        return step.status if step is not None else None

    def unchanged(
        self, run: Run, component: str, action: StepAction, fingerprint: str | None
    ) -> Step:
        """A new step recorded skipped when the run starts, its component unchanged: the
        step to save; the book keeps only what makes it again."""
        with self._lock:
            index, self._next = self._next, self._next + 1
            self._unchanged[(component, action)] = (index, fingerprint)
            self._run = (run.id, run.revision)
        return self._unchanged_step(component, action, index, fingerprint)

    def _unchanged_step(
        self, component: str, action: StepAction, index: int, fingerprint: str | None
    ) -> Step:
        run_id, revision = self._run
        return Step(
            run_id=run_id,
            index=index,
            component=component,
            action=action,
            status=StepStatus.SKIPPED,
            revision=revision,
            fingerprint=fingerprint,
            output="unchanged",
        )

    def new(self, run: Run, component: str, action: StepAction, **fields: Any) -> Step:
        """A fresh pending step, or the one an interrupted attempt left for this work."""
        with self._lock:
            existing = self._steps.get((component, action))
            if existing is not None:
                return existing
            unchanged = self._unchanged.get((component, action))
            if unchanged is not None:
                return self._unchanged_step(component, action, *unchanged)
            step = Step(
                **{
                    "revision": run.revision,
                    **fields,
                    "run_id": run.id,
                    "index": self._next,
                    "component": component,
                    "action": action,
                }
            )
            self._next += 1
            self._steps[(component, action)] = step
            return step

    def record(self, step: Step) -> None:
        with self._lock:
            self._steps[(step.component, step.action)] = step
            self._unchanged.pop((step.component, step.action), None)


def check_supported(component: ComponentEntry, action: str) -> None:
    """StepError if `component`'s driver cannot run `action` (a command driver without a
    destroy command, a driver type without a health probe): the step fails, no call is made."""
    reason = component.manifest.spec.driver.unsupported(action)
    if reason is not None:
        raise StepError(f"{component.manifest.name}: {reason}")


def driver_call(
    component: ComponentEntry,
    action: str,
    *,
    run: Run,
    revision: str,
    checkout: Path,
    inputs: Mapping[str, Any],
    state_root: Path,
    sensitive: Collection[str] = (),
) -> DriverCall:
    """The call SPEC section 4 describes, for `component` in `run`'s environment; the values
    of the `sensitive` inputs are redacted from its output whatever their names."""
    name = component.manifest.name
    check_supported(component, action)
    check_opened(name, inputs)
    return DriverCall(
        driver=component.manifest.spec.driver,
        cwd=checkout / component.folder,
        environment=run.environment,
        component=name,
        revision=revision,
        action=action,
        inputs=inputs,
        state_dir=state_root / run.environment / name,
        timeout=component.manifest.spec.timeout,
        sensitive_inputs=frozenset(sensitive),
        secret_names=secret_references.referenced(component),
    )


def output_secrets(states: Iterable[ComponentState | None]) -> frozenset[str]:
    """The clear values of the states' sensitive outputs, as text, for a driver call to
    redact (`DriverCall.secrets`): a check, plan or health probe may print what the apply
    made, and its output is stored, logged and reported. A value still sealed (the key
    could not open it) is not known, and cannot be printed by a driver given it sealed.
    Here, not in runtime/records/sensitivity.py: a drift check loads no rendering or planning."""
    found: set[str] = set()
    for state in states:
        if state is None:
            continue
        for name in state.sensitive_outputs:
            value = state.outputs.get(name)
            if value is not None and not is_sealed(value):
                found.update(secret_texts(value))
    return frozenset(found)


def check_opened(component: str, inputs: Mapping[str, Any]) -> None:
    """StepError if an input holds a value the store could not decrypt (the key is not the
    one it was encrypted with), alone or rendered into a string: a driver never gets it."""
    if MARKER in json.dumps(inputs, default=str):
        raise StepError(
            f"{component}: an input holds a sensitive value that cannot be decrypted: set"
            f" {KEY_VARIABLE} to the key the state was written with"
        )


class Unread:
    """A component state not read yet: `StepRunner.call` reads it itself."""


UNREAD = Unread()


@dataclass
class StepRunner:
    services: Services
    run: Run
    book: StepBook

    def _with_output_secrets(
        self, step: Step, call: DriverCall, stored: ComponentState | Unread | None
    ) -> DriverCall:
        """`call`, told the clear sensitive outputs its output must not show: those of the
        component's stored state (`stored`, read here if the caller has not just read it)
        and of the state a rollback restores; a gate's, those of every component of the
        environment (a gate may query any of them)."""
        store = self.services.store
        if call.action == "gate":
            states: list[ComponentState | None] = list(store.list_components(call.environment))
        elif isinstance(stored, Unread):
            states = [store.get_component(call.environment, call.component)]
        else:
            states = [stored]
        found = output_secrets([*states, step.previous_state])
        return dataclasses.replace(call, secrets=call.secrets | found) if found else call

    def call(
        self,
        step: Step,
        call: DriverCall,
        policy: RetryPolicy,
        *,
        answered: Callable[[DriverResult], bool] = lambda result: result.succeeded,
        stored: ComponentState | Unread | None = UNREAD,
        made: Collection[str] = (),
    ) -> tuple[Step, DriverResult]:
        """Run the driver until it succeeds, is cancelled or runs out of tries.

        The step is saved as running before every try, so a crash leaves it running and a
        resume tries again; `attempts` carries on from what the crashed process recorded.
        `stored`: the component's state as the caller has just read it from the store.
        `made`: the sensitive outputs an apply makes. Their values are known only once it
        has written them, after it printed them: its output is shown to readers of the run's
        logs only when it ends, with those values redacted.
        """
        step, result = self._tries(step, call, policy, answered, stored, live=not made)
        if not made:
            return step, result
        outputs = result.outputs or {}
        values = [outputs[name] for name in made if name in outputs]
        return step, dataclasses.replace(result, output=redact_values(result.output, values))

    def _tries(
        self,
        step: Step,
        call: DriverCall,
        policy: RetryPolicy,
        answered: Callable[[DriverResult], bool],
        stored: ComponentState | Unread | None,
        *,
        live: bool,
    ) -> tuple[Step, DriverResult]:
        call = self._with_output_secrets(step, call, stored)
        attempt = step.attempts
        before = step  # as the first try found it: what a try that never starts goes back to
        last: DriverResult | None = None  # the previous try's
        while True:
            attempt += 1
            step = self.save(
                step,
                status=StepStatus.RUNNING,
                attempts=attempt,
                started_at=step.started_at or self.services.clock.now(),
            )
            stop = Either(self.services.cancel, self.services.interrupted)
            seen = orphan_drivers.recorder(self.services.store, self.services.clock, self.run, call)
            tried = StepTry(
                key=f"{self.run.id}.{step.index}",
                since=step.started_at or self.services.clock.now(),
                earlier=attempt > 1,
            )
            live_output = self.services.live.kept(self.run.id, step.index)
            with live_output as printed, waiting_on_driver() as slot:
                if self.services.draining.is_set():  # stopping: no new driver; resumed later
                    raise Interrupted
                if stop.is_set():  # cancelled (or killed) while it waited for a driver slot
                    result = DriverResult(exit_code=None, cancelled=True, error="cancelled")
                elif not slot.granted:  # the walk stopped while it waited: a failure elsewhere
                    if last is not None:
                        return step, last  # no try left after all
                    self.save(before, status=StepStatus.PENDING)
                    raise NotStartedError
                else:
                    shown = dataclasses.replace(
                        call, on_output=printed if live else None, step=tried
                    )
                    result = self.services.drivers.run(shown, cancel=stop, on_started=seen)
                slot.failed = not answered(result)
            last = result
            self.services.check_interrupted()
            if answered(result) or result.cancelled or result.final:
                return step, result  # a call that can never start is not tried again
            if not has_tries_left(attempt, policy):
                return step, result
            delay = delay_before(attempt + 1, policy, uniform=self.services.uniform)
            self.services.event(
                self.run,
                "step.retrying",
                f"{call.component} {call.action} failed (try {attempt} of "
                f"{policy.attempts}); retrying in {delay:.1f}s",
                component=call.component,
                error=_failure(result),
            )
            with waiting_for_next_try():
                cancelled = self._wait(delay)
            if cancelled:
                return step, DriverResult(exit_code=None, cancelled=True, error="cancelled")

    def save(self, step: Step, **changes: Any) -> Step:
        step = step.model_copy(update=changes)
        self.services.store.save_step(step)
        self.book.record(step)
        return step

    def finish(self, step: Step, result: DriverResult, **changes: Any) -> Step:
        """The step as it ended, not yet saved: callers save it with its consequences."""
        status = (
            StepStatus.SUCCEEDED
            if result.succeeded
            else (StepStatus.CANCELLED if result.cancelled else StepStatus.FAILED)
        )
        step = step.model_copy(
            update={
                "status": status,
                "exit_code": result.exit_code,
                "output": result.output,
                "error": None if result.succeeded else _failure(result),
                "finished_at": self.services.clock.now(),
                **changes,
            }
        )
        self.book.record(step)
        return step

    def _wait(self, seconds: float) -> bool:
        """Sleep on the injected clock in slices; True when cancelled meanwhile."""
        remaining = seconds
        while remaining > 0:
            self.services.check_interrupted()
            if self.services.cancel.is_set():
                return True
            self.services.clock.sleep(min(WAIT_SLICE, remaining))
            remaining -= WAIT_SLICE
        return self.services.cancel.is_set()


def _failure(result: DriverResult) -> str:
    if result.error:
        return result.error
    return f"exited with code {result.exit_code}"
