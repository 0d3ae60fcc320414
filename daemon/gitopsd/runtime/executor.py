"""Walk one apply run: dependency order, parallel where independent, rollback on failure.

The executor is handed a run and everything it needs already loaded (the revision's
manifests, checkout and folder trees, and the previous revision for a rollback). Each
component is decided again just before it runs (`planning.decide`), with the outputs its
dependencies have at that moment. The outcome of every component commits together with its
state and an audit event, so a crash between components loses nothing, and a resumed run
skips every component already recorded as done.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from enum import StrEnum
from typing import Any

from gitopsd.engine import planning
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry
from gitopsd.engine.planning import Verdict
from gitopsd.model.state import (
    ComponentState,
    ComponentStatus,
    Run,
    RunPhase,
    RunStatus,
    StepAction,
    StepStatus,
)
from gitopsd.runtime import apply_records, compensation, gates
from gitopsd.runtime.revisions import Revisioned
from gitopsd.runtime.steps import (
    Interrupted,
    Services,
    StepBook,
    StepError,
    StepRunner,
    driver_call,
)

log = logging.getLogger(__name__)
CANCEL_POLL = 0.25


class Outcome(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"  # a dependency failed, so it never started

    @property
    def is_good(self) -> bool:
        return self in (Outcome.APPLIED, Outcome.UNCHANGED)


class ApplyRun:
    """One apply run, from its first component to its final record."""

    def __init__(
        self,
        services: Services,
        run: Run,
        *,
        environment: EnvironmentEntry,
        components: list[ComponentEntry],
        target: Revisioned,
        previous: Revisioned | None,
    ) -> None:
        self.services = services
        self.run = run
        self.environment = environment
        self.components = components
        self.target = target
        self.previous = previous
        self.book = StepBook(services.store.list_steps(run.id))
        self.runner = StepRunner(services, run, self.book)
        self._outputs = {s.name: dict(s.outputs) for s in self._states()}
        self._outputs_lock = threading.Lock()
        self._wants_rollback = False
        self._halt_on_failure = False
        self._finished = threading.Event()

    def execute(self) -> Run:
        """Run (or resume) to the end and return the finished run."""
        self.run = apply_records.started(self.services, self.run)
        watcher = threading.Thread(target=self._watch_cancel, daemon=True)
        watcher.start()
        try:
            if self.run.phase is RunPhase.FORWARD:
                outcomes = self._walk()
                failed = [n for n, o in outcomes.items() if o is Outcome.FAILED]
                cancelled = any(o is Outcome.CANCELLED for o in outcomes.values())
                if not failed and not cancelled and not self.services.cancel.is_set():
                    gate = self._run_gates()
                    if gate is not None:
                        return self._conclude_gate(gate)
            else:  # a crash during compensation: finish compensating
                failed, cancelled = [self.run.error or "rollback"], False
                self._wants_rollback = True
            return self._conclude(failed, cancelled=cancelled or self.services.cancel.is_set())
        finally:
            self._finished.set()
            watcher.join()

    # --- the walk ---------------------------------------------------------------------------

    def _walk(self) -> dict[str, Outcome]:
        names = [c.manifest.name for c in self.components]
        entries = dict(zip(names, self.components, strict=True))
        needs = {n: {d for d in entries[n].manifest.spec.depends_on if d in entries} for n in names}
        dependents: dict[str, list[str]] = {n: [] for n in names}
        for name, deps in needs.items():
            for dep in deps:
                dependents[dep].append(name)
        outcomes: dict[str, Outcome] = {}
        ready = [n for n in names if not needs[n]]
        parallelism = self.environment.manifest.spec.parallelism
        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="apply") as pool:
            running: dict[Future[Outcome], str] = {}
            while ready or running:
                while ready and not self._halted():
                    name = ready.pop(0)
                    # a copy of this thread's context, so log lines keep the run's id
                    context = contextvars.copy_context()
                    running[pool.submit(context.run, self._forward, entries[name])] = name
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    outcomes[name] = future.result()
                    ready += self._settle(name, outcomes, needs, dependents, entries)
        if self.services.draining.is_set() and len(outcomes) < len(names):
            raise Interrupted  # the process is stopping: the rest runs when the run resumes
        return outcomes

    def _settle(
        self,
        name: str,
        outcomes: dict[str, Outcome],
        needs: dict[str, set[str]],
        dependents: dict[str, list[str]],
        entries: dict[str, ComponentEntry],
    ) -> list[str]:
        """Record what `name`'s outcome means for the rest; return the newly ready ones."""
        outcome = outcomes[name]
        if outcome is Outcome.FAILED:
            policy = entries[name].manifest.spec.on_failure
            self._halt_on_failure |= policy != "continue"
            self._wants_rollback |= policy == "rollback"
        if not outcome.is_good:
            self._block(name, outcomes, dependents)
            return []
        now_ready = []
        for dependent in dependents[name]:
            needs[dependent].discard(name)
            if not needs[dependent] and dependent not in outcomes:
                now_ready.append(dependent)
        return now_ready

    def _block(
        self, name: str, outcomes: dict[str, Outcome], dependents: dict[str, list[str]]
    ) -> None:
        for dependent in dependents[name]:
            if dependent not in outcomes:
                outcomes[dependent] = Outcome.BLOCKED
                self.services.event(
                    self.run,
                    "component.blocked",
                    f"{dependent} not applied: {name} did not succeed",
                    component=dependent,
                )
                self._block(dependent, outcomes, dependents)

    def _halted(self) -> bool:
        return (
            self._halt_on_failure
            or self.services.cancel.is_set()
            or self.services.draining.is_set()
        )

    # --- one component ----------------------------------------------------------------------

    def _forward(self, component: ComponentEntry) -> Outcome:
        try:
            return self._apply_component(component)
        except StepError as error:
            return self._refuse(component, str(error))
        except Exception as error:  # a bug must fail the component, not hang the run
            log.exception("applying %s failed unexpectedly", component.manifest.name)
            return self._refuse(component, f"internal error: {error!r}")

    def _apply_component(self, component: ComponentEntry) -> Outcome:
        name = component.manifest.name
        done = self.book.find(name, StepAction.APPLY)
        if done is not None and done.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            return Outcome.APPLIED if done.status is StepStatus.SUCCEEDED else Outcome.UNCHANGED
        last = self.services.store.get_component(self.run.environment, name)
        decision = planning.decide(
            component,
            environment=self.environment,
            revision=self.run.revision,
            tree=self.target.trees.get(component.folder, ""),
            outputs=self._outputs_now(),
            last=last,
        )
        if decision.verdict is Verdict.WAITING:
            return self._refuse(component, decision.reason)
        if decision.verdict is Verdict.UNCHANGED:
            step = self.book.new(self.run, name, StepAction.APPLY, fingerprint=decision.fingerprint)
            self.runner.save(
                step,
                status=StepStatus.SKIPPED,
                error=None,
                output="unchanged",
                finished_at=self.services.clock.now(),
            )
            return Outcome.UNCHANGED
        return self._run_apply(component, decision, last)

    def _run_apply(
        self, component: ComponentEntry, decision: planning.Decision, last: ComponentState | None
    ) -> Outcome:
        name = component.manifest.name
        assert decision.inputs is not None and decision.fingerprint is not None
        step = self.book.new(
            self.run, name, StepAction.APPLY, fingerprint=decision.fingerprint, previous_state=last
        )
        call = driver_call(
            component,
            "apply",
            run=self.run,
            revision=self.run.revision,
            checkout=self.target.checkout,
            inputs=decision.inputs,
            state_root=self.services.state_root,
        )
        step, result = self.runner.call(step, call, component.manifest.spec.retry)
        step = self.runner.finish(step, result)
        now = self.services.clock.now()
        if not result.succeeded:
            state = self._failed_state(name, decision, last)
            with self.services.store.transaction():
                self.services.store.save_step(step)
                self.services.store.save_component(state)
                self.services.event(
                    self.run, "component.failed", f"{name}: {step.error}", component=name
                )
            return Outcome.CANCELLED if result.cancelled else Outcome.FAILED
        state = ComponentState(
            environment=self.run.environment,
            name=name,
            revision=self.run.revision,
            fingerprint=decision.fingerprint,
            inputs=decision.inputs,
            outputs=result.outputs or {},
            updated_at=now,
        )
        with self.services.store.transaction():
            self.services.store.save_step(step)
            self.services.store.save_component(state)
            self.services.event(
                self.run, "component.applied", f"{name} applied ({decision.reason})", component=name
            )
        with self._outputs_lock:
            self._outputs[name] = dict(state.outputs)
        return self._check_health(component, state, decision.inputs)

    def _check_health(
        self, component: ComponentEntry, state: ComponentState, inputs: dict[str, Any]
    ) -> Outcome:
        name = component.manifest.name
        if getattr(component.manifest.spec.driver, "health", None) is None:
            return Outcome.APPLIED
        done = self.book.find(name, StepAction.HEALTH)
        if done is not None and done.status is StepStatus.SUCCEEDED:
            return Outcome.APPLIED
        step = self.book.new(self.run, name, StepAction.HEALTH)
        call = driver_call(
            component,
            "health",
            run=self.run,
            revision=self.run.revision,
            checkout=self.target.checkout,
            inputs=inputs,
            state_root=self.services.state_root,
        )
        step, result = self.runner.call(step, call, component.manifest.spec.retry)
        step = self.runner.finish(step, result)
        with self.services.store.transaction():
            self.services.store.save_step(step)
            if not result.succeeded:
                failed = state.model_copy(update={"status": ComponentStatus.FAILED})
                self.services.store.save_component(failed)
                self.services.event(
                    self.run,
                    "component.unhealthy",
                    f"{name} is not healthy after apply: {step.error}",
                    component=name,
                )
        if result.succeeded:
            return Outcome.APPLIED
        return Outcome.CANCELLED if result.cancelled else Outcome.FAILED

    def _refuse(self, component: ComponentEntry, reason: str) -> Outcome:
        """A component that cannot be attempted fails its step without calling a driver."""
        name = component.manifest.name
        step = self.book.new(self.run, name, StepAction.APPLY)
        with self.services.store.transaction():
            self.runner.save(
                step, status=StepStatus.FAILED, error=reason, finished_at=self.services.clock.now()
            )
            self.services.event(self.run, "component.failed", f"{name}: {reason}", component=name)
        return Outcome.FAILED

    def _failed_state(
        self, name: str, decision: planning.Decision, last: ComponentState | None
    ) -> ComponentState:
        """What is known after a failed apply: the last good state, marked failed."""
        now = self.services.clock.now()
        if last is not None:
            return last.model_copy(update={"status": ComponentStatus.FAILED, "updated_at": now})
        assert decision.fingerprint is not None
        return ComponentState(
            environment=self.run.environment,
            name=name,
            revision=self.run.revision,
            fingerprint=decision.fingerprint,
            inputs=decision.inputs or {},
            status=ComponentStatus.FAILED,
            updated_at=now,
        )

    def _outputs_now(self) -> dict[str, dict[str, Any]]:
        with self._outputs_lock:
            return dict(self._outputs)

    def _states(self) -> list[ComponentState]:
        return self.services.store.list_components(self.run.environment)

    # --- start and end ----------------------------------------------------------------------

    def _conclude(self, failed: list[str], *, cancelled: bool) -> Run:
        error = None
        if failed and self._wants_rollback and not cancelled:
            error = self._roll_back(failed)
        elif failed:
            error = f"failed: {', '.join(sorted(failed))}"
        status = (
            RunStatus.CANCELLED
            if cancelled
            else (RunStatus.FAILED if failed else RunStatus.SUCCEEDED)
        )
        if cancelled:
            error = "cancelled"
        return self._finish(status, error)

    def _run_gates(self) -> gates.GateFailure | None:
        return gates.run_gates(
            self.runner,
            self.run,
            self.environment.manifest.spec.gates,
            checkout=self.target.checkout,
            state_root=self.services.state_root,
        )

    def _conclude_gate(self, failure: gates.GateFailure) -> Run:
        """Every component applied but a gate failed: the environment is at the new revision,
        failed, and the revision is not verified (it never flows downstream). Nothing is
        rolled back: the gate judged the revision, not a step that broke something."""
        if failure.cancelled:
            return self._finish(RunStatus.CANCELLED, "cancelled")
        error = f"gate {failure.gate} failed: {failure.error}"
        return self._finish(RunStatus.FAILED, error, applied=True)

    def _roll_back(self, failed: list[str]) -> str:
        summary = f"failed: {', '.join(sorted(failed))}"
        if self.previous is None:
            self.services.event(
                self.run,
                "rollback.impossible",
                "no previous revision to roll back to; what was applied stays",
            )
            return summary + "; nothing to roll back to"
        self.run = self.run.model_copy(update={"phase": RunPhase.ROLLBACK, "error": summary})
        self.services.store.save_run(self.run)
        self.services.event(
            self.run, "rollback.started", f"rolling back to {self.previous.revision[:12]}"
        )
        left = compensation.compensate(
            self.runner, self.run, self.components, target=self.target, previous=self.previous
        )
        if left:
            return summary + f"; rollback incomplete: {', '.join(left)}"
        return summary + f"; rolled back to {self.previous.revision[:12]}"

    def _finish(self, status: RunStatus, error: str | None, *, applied: bool = False) -> Run:
        return apply_records.finished(self.services, self.run, status, error, applied=applied)

    def _watch_cancel(self) -> None:
        """Turn a cancel requested through the store (`gitopsd cancel`) into the cancel flag."""
        while not self._finished.wait(CANCEL_POLL) and not self.services.cancel.is_set():
            found = self.services.store.get_run(self.run.id)
            if found is not None and found.cancel_requested:
                self.services.event(self.run, "run.cancelling", "cancel requested")
                self.services.cancel.set()
