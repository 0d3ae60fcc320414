"""Plan runs: what an apply would change, asked of the drivers (`plan`: 0 none, 2 changes).

Components whose fingerprint is unchanged are not asked; components whose inputs wait for
a dependency's new outputs cannot be planned exactly and are reported as changing after it.
Nothing here changes state: a plan run records only itself and its steps. It is walked by
the one walker (runtime/runs/walking.py): a cancel or `run_timeout` stops its drivers; orphans
(deployed, no longer in the environment) are reported as destroys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gitopsd.engine import planning, stepping
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry
from gitopsd.engine.planning import Decision, Verdict
from gitopsd.engine.ports import DriverResult, SecretSource, StateStore
from gitopsd.engine.selection import Selection
from gitopsd.engine.stepping import Node
from gitopsd.model.state import Run, RunStatus, StepAction, StepStatus
from gitopsd.runtime.records import sensitivity
from gitopsd.runtime.runs import apply_records
from gitopsd.runtime.runs.closing import close_pending
from gitopsd.runtime.runs.revisions import Revisioned
from gitopsd.runtime.runs.steps import Services, StepBook, StepError, StepRunner, driver_call
from gitopsd.runtime.runs.walking import Ending, Walk

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 2
Found = TypeVar("Found")  # what a decision over recorded states finds (`_from_records`)


@dataclass(frozen=True)
class PlannedComponent:
    name: str
    changes: bool | None  # None: the driver's plan failed
    reason: str
    output: str = ""
    action: str = "apply"  # "destroy": an orphan that an apply with `prune: true` destroys


def preview(
    store: StateStore,
    target: Revisioned,
    environment: EnvironmentEntry,
    components: list[ComponentEntry],
    *,
    digest: Callable[[bytes], str] | None,
    secrets: SecretSource | None,
) -> tuple[planning.Preview, dict[str, set[str]]]:
    """What applying `target` would change, decided from fingerprints and the recorded
    states alone, and each component's sensitive outputs (`sensitivity.declared`): the
    start of a plan run, and `Workspace.preview` (no driver runs, nothing is written)."""
    return _from_records(planning.plan, store, target, environment, components, digest, secrets)


def as_applied(
    store: StateStore,
    target: Revisioned,
    environment: EnvironmentEntry,
    components: list[ComponentEntry],
    *,
    digest: Callable[[bytes], str] | None,
    secrets: SecretSource | None,
) -> set[str]:
    """The components `target` has as they were last applied (planning.as_applied), from
    the recorded states, fingerprinted as a run would."""
    found, _ = _from_records(
        planning.as_applied, store, target, environment, components, digest, secrets
    )
    return found


def _from_records(
    find: Callable[..., Found],
    store: StateStore,
    target: Revisioned,
    environment: EnvironmentEntry,
    components: list[ComponentEntry],
    digest: Callable[[bytes], str] | None,
    secrets: SecretSource | None,
) -> tuple[Found, dict[str, set[str]]]:
    """`find` (planning.plan, planning.as_applied) of `components` at `target`, from the
    environment's recorded states, with the sensitive outputs they declare, inputs entering
    a fingerprint as a run's do (`sensitivity.concealer`); and those sensitive outputs."""
    observed = {s.name: s for s in store.list_components(environment.manifest.name)}
    declared = sensitivity.declared(target.repository, observed.values())
    found = find(
        Selection(environment, components, []),
        revision=target.revision,
        trees=target.trees,
        observed=observed,
        conceal=sensitivity.concealer(digest, declared, secrets),
    )
    return found, declared


class PlanRun:
    def __init__(
        self,
        services: Services,
        run: Run,
        *,
        environment: EnvironmentEntry,
        components: list[ComponentEntry],
        target: Revisioned,
        orphans: Sequence[str] = (),
    ) -> None:
        self.services = services
        self.run = run
        self.environment = environment
        self.components = {c.manifest.name: c for c in components}
        self.target = target
        self.orphans = list(orphans)
        self.runner = StepRunner(services, run, StepBook([]))
        self.planned: dict[str, PlannedComponent] = {}
        self.declared: dict[str, set[str]] = {}

    def execute(self) -> tuple[Run, list[PlannedComponent]]:
        self.run = apply_records.started(self.services, self.run)
        self.runner.run = self.run
        with self.services.deciding:  # one run at a time (see Services.deciding)
            plan = self._decide()
            self._record(plan.decisions)
        decisions = {d.component: d for d in plan.decisions}
        nodes = stepping.plan_graph(list(decisions))
        spec = self.environment.manifest.spec
        walk = Walk(
            self.services,
            self.run,
            nodes,
            self.runner.book,
            parallelism=spec.parallelism,
            timeout=spec.run_timeout,
        )
        ending = walk.walk(lambda node: self._plan_one(decisions[node.component]), self._refuse)
        stopped = ending.cancelled or ending.timed_out
        close_pending(self.runner, nodes, "not planned: the run stopped first", stopped=stopped)
        planned = [self.planned[d.component] for d in plan.decisions if d.component in self.planned]
        planned += [_orphan(name, spec.prune) for name in self.orphans]
        return self._finish(ending, planned), planned

    def _decide(self) -> planning.Preview:
        services = self.services
        plan, self.declared = preview(
            services.store,
            self.target,
            self.environment,
            list(self.components.values()),
            digest=services.digest,
            secrets=services.secrets,
        )
        return plan

    def _record(self, decisions: list[Decision]) -> None:
        """Every step in one write; components that need no driver call are skipped now."""
        steps = []
        for decision in decisions:
            name = decision.component
            step = self.runner.book.new(
                self.run, name, StepAction.PLAN, fingerprint=decision.fingerprint
            )
            if decision.verdict is not Verdict.RUN:
                waiting = decision.verdict is Verdict.WAITING
                self.planned[name] = PlannedComponent(name, waiting, decision.reason)
                step = step.model_copy(
                    update={"status": StepStatus.SKIPPED, "output": decision.reason}
                )
                self.runner.book.record(step)
            steps.append(step)
        self.services.store.save_steps(steps)

    def _finish(self, ending: Ending, planned: list[PlannedComponent]) -> Run:
        failed = [p.name for p in planned if p.changes is None]
        if ending.timed_out:
            timeout = self.environment.manifest.spec.run_timeout or 0
            status, error = RunStatus.FAILED, f"run_timeout of {timeout:g}s reached"
        elif ending.cancelled or ending.progress.cancelled:
            status, error = RunStatus.CANCELLED, "cancelled"
        elif failed:
            status, error = RunStatus.FAILED, f"plan failed: {', '.join(failed)}"
        else:
            status, error = RunStatus.SUCCEEDED, None
        return apply_records.finished(self.services, self.run, status, error, applied=False)

    def _refuse(self, node: Node, reason: str) -> StepStatus:
        step = self.runner.book.new(self.run, node.component, StepAction.PLAN)
        self.runner.save(step, status=StepStatus.FAILED, error=reason)
        self.planned[node.component] = PlannedComponent(node.component, None, reason)
        return StepStatus.FAILED

    def _plan_one(self, decision: Decision) -> StepStatus:
        name = decision.component
        step = self.runner.book.new(self.run, name, StepAction.PLAN)
        component = self.components[name]
        try:
            call = driver_call(
                component,
                "plan",
                run=self.run,
                revision=self.run.revision,
                checkout=self.target.checkout,
                inputs=decision.inputs or {},
                state_root=self.services.state_root,
                sensitive=sensitivity.sensitive_inputs(component, self.declared),
            )
        except StepError as error:
            return self._refuse(Node(name, StepAction.PLAN), str(error))
        step, result = self.runner.call(
            step, call, component.manifest.spec.retry, answered=_answered
        )
        answered = _answered(result)
        status = StepStatus.SUCCEEDED if answered else StepStatus.FAILED
        if result.cancelled:
            status = StepStatus.CANCELLED
        step = self.runner.save(
            step,
            status=status,
            exit_code=result.exit_code,
            output=result.output,
            error=None if answered else (result.error or f"exit {result.exit_code}"),
            finished_at=self.services.clock.now(),
        )
        if not answered:
            reason = step.error or "plan failed"
            self.planned[name] = PlannedComponent(name, None, reason, result.output)
        else:
            changes = result.exit_code == EXIT_CHANGES
            self.planned[name] = PlannedComponent(name, changes, decision.reason, result.output)
        return status


def _orphan(name: str, prune: bool) -> PlannedComponent:
    """An orphan is a change: a destroy, now (prune) or when someone destroys it."""
    when = "the next apply destroys it (prune: true)" if prune else "prune is off: it stays"
    return PlannedComponent(name, True, f"orphaned: no longer in this environment; {when}",
                            action="destroy")  # fmt: skip


def _answered(result: DriverResult) -> bool:
    """A plan that said "no changes" (0) or "changes" (2); anything else is an error."""
    return result.exit_code in (EXIT_NO_CHANGES, EXIT_CHANGES) and result.error is None
