"""Plan runs: what an apply would change, asked of the drivers (`plan`: 0 none, 2 changes).

Components whose fingerprint is unchanged are not asked; components whose inputs wait for
a dependency's new outputs cannot be planned exactly and are reported as changing after it.
Nothing here changes state: a plan run records only itself and its steps.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gitopsd.engine import planning
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry
from gitopsd.engine.planning import Decision, Verdict
from gitopsd.engine.ports import DriverResult
from gitopsd.engine.selection import Selection
from gitopsd.model.state import Run, RunStatus, StepAction, StepStatus
from gitopsd.runtime.revisions import Revisioned
from gitopsd.runtime.steps import Services, StepBook, StepError, StepRunner, driver_call

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 2


@dataclass(frozen=True)
class PlannedComponent:
    name: str
    changes: bool | None  # None: the driver's plan failed
    reason: str
    output: str = ""


class PlanRun:
    def __init__(
        self,
        services: Services,
        run: Run,
        *,
        environment: EnvironmentEntry,
        components: list[ComponentEntry],
        target: Revisioned,
    ) -> None:
        self.services = services
        self.run = run
        self.environment = environment
        self.components = {c.manifest.name: c for c in components}
        self.target = target
        self.runner = StepRunner(services, run, StepBook([]))

    def execute(self) -> tuple[Run, list[PlannedComponent]]:
        store = self.services.store
        run = self.run.model_copy(
            update={"status": RunStatus.RUNNING, "started_at": self.services.clock.now()}
        )
        store.save_run(run)
        observed = {s.name: s for s in store.list_components(run.environment)}
        plan = planning.plan(
            Selection(self.environment, list(self.components.values()), []),
            revision=run.revision,
            trees=self.target.trees,
            observed=observed,
        )
        parallelism = self.environment.manifest.spec.parallelism
        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="plan") as pool:
            planned = list(pool.map(self._plan_one, plan.decisions))
        failed = [p.name for p in planned if p.changes is None]
        status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        run = run.model_copy(
            update={
                "status": status,
                "finished_at": self.services.clock.now(),
                "error": f"plan failed: {', '.join(failed)}" if failed else None,
            }
        )
        store.save_run(run)
        return run, planned

    def _plan_one(self, decision: Decision) -> PlannedComponent:
        name = decision.component
        step = self.runner.book.new(
            self.run, name, StepAction.PLAN, fingerprint=decision.fingerprint
        )
        if decision.verdict is not Verdict.RUN:
            status = StepStatus.SKIPPED
            self.runner.save(
                step, status=status, output=decision.reason, finished_at=self.services.clock.now()
            )
            return PlannedComponent(name, decision.verdict is Verdict.WAITING, decision.reason)
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
            )
        except StepError as error:
            self.runner.save(step, status=StepStatus.FAILED, error=str(error))
            return PlannedComponent(name, None, str(error))
        step, result = self.runner.call(
            step, call, component.manifest.spec.retry, answered=_answered
        )
        answered = _answered(result)
        self.runner.save(
            step,
            status=StepStatus.SUCCEEDED if answered else StepStatus.FAILED,
            exit_code=result.exit_code,
            output=result.output,
            error=None if answered else (result.error or f"exit {result.exit_code}"),
            finished_at=self.services.clock.now(),
        )
        if not answered:
            return PlannedComponent(name, None, step.error or "plan failed", result.output)
        changes = result.exit_code == EXIT_CHANGES
        return PlannedComponent(name, changes, decision.reason, result.output)


def _answered(result: DriverResult) -> bool:
    """A plan that said "no changes" (0) or "changes" (2); anything else is an error."""
    return result.exit_code in (EXIT_NO_CHANGES, EXIT_CHANGES) and result.error is None
