"""One apply run: its steps recorded when it starts, walked in dependency order, concluded.

The executor is handed a run and everything it needs already loaded (the revision's
manifests, checkout and folder trees, the previous revision for a rollback, and the
orphans to prune with the revision that last applied each). When the run starts, every one
of its steps (apply, health, prune destroy, gate) is recorded in one write: components
whose desired state did not change are recorded skipped right away; a component whose
inputs wait on a dependency's new outputs is decided when that dependency finished
(`planning.decide`, with the outputs it has then). The one walker (runtime/runs/walking.py) runs
the rest, within `parallelism`, with cancel, `run_timeout` and resume: after a crash every
step not recorded succeeded or skipped runs again, health checks and gates included.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from gitopsd.engine import planning, selection, stepping
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry
from gitopsd.engine.planning import Verdict
from gitopsd.engine.ports import DriverCall
from gitopsd.engine.selection import Selection
from gitopsd.engine.stepping import Node, Part
from gitopsd.model.state import (
    ComponentState,
    ComponentStatus,
    Run,
    RunPhase,
    RunStatus,
    Step,
    StepAction,
    StepStatus,
)
from gitopsd.runtime.records import sensitivity
from gitopsd.runtime.records.pages import each_component
from gitopsd.runtime.runs import (
    apply_records,
    closing,
    compensation,
    destroying,
    gates,
    plan_run,
    recalling,
)
from gitopsd.runtime.runs.orphans import Orphan
from gitopsd.runtime.runs.revisions import Revisioned
from gitopsd.runtime.runs.steps import Services, StepBook, StepError, StepRunner, driver_call
from gitopsd.runtime.runs.walking import Ending, Walk

FAILURES = (StepAction.APPLY, StepAction.HEALTH, StepAction.DESTROY)


class ApplyRun:
    """One apply run, from its first step to its final record."""

    def __init__(
        self,
        services: Services,
        run: Run,
        *,
        environment: EnvironmentEntry,
        components: list[ComponentEntry],
        target: Revisioned,
        previous: Revisioned | None,
        orphans: list[Orphan] | None = None,
    ) -> None:
        self.services = services
        self.run = run
        self.environment = environment
        self.components = components
        self.entries = {c.manifest.name: c for c in components}
        self.target = target
        self.previous = previous
        self.orphans = {o.component.manifest.name: o for o in orphans or []}
        self.book = StepBook(services.store.list_steps(run.id))
        self.runner = StepRunner(services, run, self.book)
        self._outputs: dict[str, dict[str, Any]] = {}
        self._outputs_lock = threading.Lock()
        # what decides the steps when the run starts (`_decisions`), and is let go then
        self._last: dict[str, planning.LastApply] = {}
        self._declared: sensitivity.Declared = {}
        self._conceal: planning.Conceal | None = None

    def execute(self) -> Run:
        """Run (or resume) to the end and return the finished run."""
        self.run = apply_records.started(self.services, self.run)
        self.runner.run = self.run
        if self.run.phase is not RunPhase.FORWARD:  # a crash during compensation: finish it
            return self._finish(RunStatus.FAILED, self._roll_back(self.run.error or "failed"))
        with self.services.deciding:  # one run at a time (see Services.deciding)
            nodes = self._decide()
        spec = self.environment.manifest.spec
        walk = Walk(
            self.services,
            self.run,
            nodes,
            self.book,
            parallelism=spec.parallelism,
            timeout=spec.run_timeout,
        )
        ending = walk.walk(self._start, self._refuse)
        self._close(nodes, ending)
        return self._conclude(ending)

    # --- the steps, decided and recorded at the start ----------------------------------------

    def _decide(self) -> list[Node]:
        """Read the states the run starts from, then decide and record its steps."""
        self._declared = sensitivity.declared(self.target.repository, self._read_states())
        services = self.services
        self._conceal = sensitivity.concealer(services.digest, self._declared, services.secrets)
        nodes = self._graph()
        self._record(nodes)
        return nodes

    def _graph(self) -> list[Node]:
        parts = [
            Part(
                c.manifest.name,
                tuple(c.manifest.spec.depends_on),
                c.manifest.spec.on_failure,
                c.manifest.spec.driver.unsupported("health") is None,
            )
            for c in self.components
        ]
        orphans = [destroying.part(o.component) for o in self.orphans.values()]
        names = [g.name for g in self.environment.manifest.spec.gates]
        return stepping.apply_graph(parts, gates=names, orphans=orphans)

    def _record(self, nodes: list[Node]) -> None:
        """Every step not yet recorded, in one write; unchanged components recorded skipped.

        A step's `previous_state` (what a rollback restores) is added when it runs: the
        skipped ones never need it, and copying it for each of them is wasted work."""
        missing = [n for n in nodes if self.book.find(*n.key) is None]
        if not missing:
            return
        decisions = self._decisions() if len(missing) == len(nodes) else {}
        self.services.store.save_steps(
            self._new_step(n, decisions.get(n.component)) for n in missing
        )

    def _decisions(self) -> dict[str, planning.Decision]:
        """The components unchanged at the start, which are recorded skipped; the states read
        for them are let go of once they are decided."""
        observed, self._last = self._last, {}
        return planning.unchanged(
            Selection(self.environment, self.components, []),
            revision=self.run.revision,
            trees=self.target.trees,
            observed=observed,
            conceal=self._conceal,
        )

    def _new_step(self, node: Node, decision: planning.Decision | None) -> Step:
        name, action = node.key
        skippable = action in (StepAction.APPLY, StepAction.HEALTH)
        if skippable and decision is not None and decision.verdict is Verdict.UNCHANGED:
            fingerprint = decision.fingerprint if action is StepAction.APPLY else None
            return self.book.unchanged(self.run, name, action, fingerprint)
        fields: dict[str, Any] = {}
        if action is StepAction.APPLY and decision is not None:
            fields["fingerprint"] = decision.fingerprint
        if action is StepAction.DESTROY:
            state = self.orphans[name].state
            fields.update(revision=state.revision, previous_state=state)
        return self.book.new(self.run, name, action, **fields)

    # --- starting one step ------------------------------------------------------------------

    def _start(self, node: Node) -> StepStatus:
        name, action = node.key
        try:
            if action is StepAction.APPLY:
                return self._apply_component(self.entries[name])
            if action is StepAction.HEALTH:
                return self._check_health(self.entries[name])
            if action is StepAction.DESTROY:
                orphan = self.orphans[name]
                return destroying.destroy_one(
                    self.runner, orphan.component, orphan.source, orphan.state
                )
            return self._run_gate(name)
        except StepError as error:
            return self._refuse(node, str(error))

    def _refuse(self, node: Node, reason: str) -> StepStatus:
        return closing.refuse(self.runner, node.component, node.action, reason)

    def _apply_component(self, component: ComponentEntry) -> StepStatus:
        name = component.manifest.name
        last = self.services.store.get_component(self.run.environment, name)
        decision = planning.decide(
            component,
            environment=self.environment,
            revision=self.run.revision,
            tree=self.target.trees.get(component.folder, ""),
            outputs=self._outputs_of(component.manifest.spec.depends_on),
            last=last,
            conceal=self._conceal,
        )
        if decision.verdict is Verdict.WAITING:  # its dependencies have applied: for good
            reason = f"inputs cannot be rendered: {decision.problem}"
            return closing.refuse(self.runner, name, StepAction.APPLY, reason)
        if decision.verdict is Verdict.UNCHANGED:
            return self._skip(name, decision)
        return self._run_apply(component, decision, last)

    def _skip(self, name: str, decision: planning.Decision) -> StepStatus:
        """Decided unchanged once its dependencies finished: it, and its health, skipped."""
        now = self.services.clock.now()
        steps = [self.book.find(name, StepAction.APPLY), self.book.find(name, StepAction.HEALTH)]
        skipped = [
            s.model_copy(
                update={
                    "status": StepStatus.SKIPPED,
                    "output": "unchanged",
                    "fingerprint": s.fingerprint or decision.fingerprint,
                    "finished_at": now,
                }
            )
            for s in steps
            if s is not None
        ]
        for step in skipped:
            self.book.record(step)
        self.services.store.save_steps(skipped)
        return StepStatus.SKIPPED

    def _run_apply(
        self, component: ComponentEntry, decision: planning.Decision, last: ComponentState | None
    ) -> StepStatus:
        name = component.manifest.name
        assert decision.inputs is not None and decision.fingerprint is not None
        step = self.book.new(self.run, name, StepAction.APPLY)
        step = step.model_copy(update={"fingerprint": decision.fingerprint, "previous_state": last})
        sensitive = sensitivity.sensitive_inputs(component, self._declared)
        hashed = sensitivity.hashed_inputs(component, sensitive)
        call = self._call(component, "apply", decision.inputs, sensitive)
        made = component.manifest.spec.sensitive_outputs
        retry = component.manifest.spec.retry
        step, result = self.runner.call(step, call, retry, stored=last, made=made)
        step = self.runner.finish(step, result)
        if not result.succeeded:
            with self.services.store.transaction():
                self.services.store.save_step(step)
                failed = self._failed_state(name, decision, last, sensitive, hashed)
                self.services.store.save_component(failed)
                self.services.event(
                    self.run, "component.failed", f"{name}: {step.error}", component=name
                )
            return step.status
        state = ComponentState(
            environment=self.run.environment,
            name=name,
            revision=self.run.revision,
            fingerprint=decision.fingerprint,
            inputs=decision.inputs,
            outputs=result.outputs or {},
            sensitive_inputs=sensitive,
            hashed_inputs=hashed,
            sensitive_outputs=component.manifest.spec.sensitive_outputs,
            updated_at=self.services.clock.now(),
        )
        with self.services.store.transaction():
            self.services.store.save_step(step)
            self.services.store.save_component(state)
            self.services.event(
                self.run, "component.applied", f"{name} applied ({decision.reason})", component=name
            )
        with self._outputs_lock:
            self._outputs[name] = dict(state.outputs)
        return step.status

    def _check_health(self, component: ComponentEntry) -> StepStatus:
        """The health probe after an apply, with the inputs that apply recorded: also after
        a crash, when the apply step is done and this one was left running."""
        name = component.manifest.name
        applied = self.book.find(name, StepAction.APPLY)
        if applied is not None and applied.status is StepStatus.SKIPPED:
            step = self.book.new(self.run, name, StepAction.HEALTH)
            self.runner.save(step, status=StepStatus.SKIPPED, output="unchanged")
            return StepStatus.SKIPPED
        state = self.services.store.get_component(self.run.environment, name)
        if state is None:
            raise StepError(f"{name} has no recorded state to check the health of")
        inputs = recalling.recalled(
            state, manifests=self.services.manifests, digest=self.services.digest
        )
        step = self.book.new(self.run, name, StepAction.HEALTH)
        call = self._call(component, "health", inputs, state.sensitive_inputs)
        step, result = self.runner.call(step, call, component.manifest.spec.retry, stored=state)
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
        return step.status

    def _run_gate(self, name: str) -> StepStatus:
        gate = next(g for g in self.environment.manifest.spec.gates if g.name == name)
        failure = gates.run_gate(
            self.runner,
            self.run,
            gate,
            checkout=self.target.checkout,
            state_root=self.services.state_root,
        )
        step = self.book.find(name, StepAction.GATE)
        return step.status if step is not None and failure is not None else StepStatus.SUCCEEDED

    def _call(
        self,
        component: ComponentEntry,
        action: str,
        inputs: Mapping[str, Any],
        sensitive: Collection[str],
    ) -> DriverCall:
        return driver_call(
            component,
            action,
            run=self.run,
            revision=self.run.revision,
            checkout=self.target.checkout,
            inputs=inputs,
            state_root=self.services.state_root,
            sensitive=sensitive,
        )

    def _failed_state(
        self,
        name: str,
        decision: planning.Decision,
        last: ComponentState | None,
        sensitive: list[str],
        hashed: list[str],
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
            sensitive_inputs=sensitive,
            hashed_inputs=hashed,
            status=ComponentStatus.FAILED,
            updated_at=now,
        )

    def _outputs_of(self, dependencies: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The outputs the dependencies have now (a component never sees anyone else's)."""
        with self._outputs_lock:
            return {name: self._outputs[name] for name in dependencies if name in self._outputs}

    def _read_states(self) -> list[ComponentState]:
        """Keep what the run needs of each component's state, read a page at a time: its
        outputs, and what decides whether it changed (a thousand whole states, three
        environments' at once, were the high-water mark of a daemon's memory); the states
        that declare sensitive outputs are returned."""
        sensitive = []
        for state in each_component(self.services.store, self.run.environment):
            self._outputs[state.name] = dict(state.outputs)
            self._last[state.name] = planning.LastApply.of(state)
            if state.sensitive_outputs:
                sensitive.append(state)
        return sensitive

    # --- the end ----------------------------------------------------------------------------

    def _close(self, nodes: list[Node], ending: Ending) -> None:
        """Blocked components get their event; steps that never started are closed."""
        for name, action in ending.progress.blocked:
            if action is StepAction.APPLY:
                self.services.event(
                    self.run,
                    "component.blocked",
                    f"{name} not applied: a dependency did not succeed",
                    component=name,
                )
        stopped = ending.cancelled or ending.timed_out
        reason = "not started: the run stopped first"
        closing.close_pending(self.runner, nodes, reason, stopped=stopped)

    def _conclude(self, ending: Ending) -> Run:
        progress = ending.progress
        failed = sorted({k[0] for k in progress.failed if k[1] in FAILURES})
        gate = next((k[0] for k in progress.failed if k[1] is StepAction.GATE), None)
        if ending.timed_out:
            timeout = self.environment.manifest.spec.run_timeout or 0
            return self._finish(RunStatus.FAILED, f"run_timeout of {timeout:g}s reached")
        if ending.cancelled or (progress.cancelled and not failed):
            return self._finish(RunStatus.CANCELLED, "cancelled")
        if failed:
            summary = f"failed: {', '.join(failed)}"
            if progress.wants_rollback:
                summary = self._roll_back(summary)
            return self._finish(RunStatus.FAILED, summary)
        if gate is not None:
            return self._conclude_gate(gate)
        return apply_records.finished(
            self.services, self.run, RunStatus.SUCCEEDED, None, behind=self._left_behind()
        )

    def _left_behind(self) -> list[str]:
        """The components of the environment a run of some of them leaves not as applied at
        its revision (a plan of it would still change them: changed since, or failed): the
        environment is verified at a revision only when all of it is there, lest an
        apply of the components that work verify a revision one of the others failed."""
        if not self.run.components:
            return []
        everything = selection.select(self.target.repository, self.run.environment).components
        preview, _ = plan_run.preview(
            self.services.store,
            self.target,
            self.environment,
            everything,
            digest=self.services.digest,
            secrets=self.services.secrets,
        )
        return [d.component for d in preview.decisions if d.verdict is not Verdict.UNCHANGED]

    def _conclude_gate(self, gate: str) -> Run:
        """Every component applied but a gate failed: the environment is at the new revision,
        failed, and the revision is not verified (it never flows downstream). Nothing is
        rolled back: the gate judged the revision, not a step that broke something."""
        step = self.book.find(gate, StepAction.GATE)
        error = f"gate {gate} failed: {step.error if step else 'failed'}"
        return self._finish(RunStatus.FAILED, error, applied=True)

    def _roll_back(self, summary: str) -> str:
        if self.previous is None:
            self.services.event(
                self.run,
                "rollback.impossible",
                "no previous revision to roll back to; what was applied stays",
            )
            return summary + "; nothing to roll back to"
        self.run = self.run.model_copy(update={"phase": RunPhase.ROLLBACK, "error": summary})
        self.runner.run = self.run
        self.services.store.save_run(self.run)
        self.services.event(
            self.run, "rollback.started", f"rolling back to {self.previous.revision[:12]}"
        )
        left = self._compensate(self.previous)
        if left:
            return summary + f"; rollback incomplete: {', '.join(left)}"
        return summary + f"; rolled back to {self.previous.revision[:12]}"

    def _compensate(self, previous: Revisioned) -> list[str]:
        """Walk the rollback steps (dependents first, past failures); what is left undone."""
        doomed = compensation.touched(self.runner, self.components)
        entries = {c.manifest.name: c for c in doomed}
        nodes = stepping.rollback_graph([destroying.part(c) for c in doomed])
        steps = [compensation.rollback_step(self.runner, self.run, n, previous) for n in entries]
        self.services.store.save_steps([s for s in steps if s.status is StepStatus.PENDING])
        walk = Walk(
            self.services,
            self.run,
            nodes,
            self.book,
            parallelism=self.environment.manifest.spec.parallelism,
            timeout=None,
        )

        def start(node: Node) -> StepStatus:
            component = entries[node.component]
            return compensation.compensate_one(
                self.runner, self.run, component, target=self.target, previous=previous
            )

        progress = walk.walk(start, self._refuse).progress
        closing.close_pending(self.runner, nodes, "not rolled back: cancelled", stopped=True)
        return sorted({k[0] for k in (*progress.failed, *progress.cancelled, *progress.unstarted)})

    def _finish(self, status: RunStatus, error: str | None, *, applied: bool = False) -> Run:
        return apply_records.finished(self.services, self.run, status, error, applied=applied)
