"""Destroy runs: components torn down in reverse dependency order, their state removed.

A destroy stops at the first failure: tearing down a network under a cluster that would
not go away makes things worse. Each component's destroy commits with the removal of its
state, so a resumed destroy continues with the next component.
"""

from __future__ import annotations

from gitopsd.engine.loading import ComponentEntry
from gitopsd.model.state import (
    EnvironmentState,
    EnvironmentStatus,
    Run,
    RunStatus,
    StepAction,
    StepStatus,
)
from gitopsd.runtime.revisions import Revisioned
from gitopsd.runtime.steps import Services, StepBook, StepError, StepRunner, driver_call


class DestroyRun:
    def __init__(
        self, services: Services, run: Run, *, components: list[ComponentEntry], target: Revisioned
    ) -> None:
        self.services = services
        self.run = run
        self.components = components
        self.target = target
        self.runner = StepRunner(services, run, StepBook(services.store.list_steps(run.id)))

    def execute(self) -> Run:
        store = self.services.store
        self.run = self.run.model_copy(
            update={"status": RunStatus.RUNNING, "started_at": self.services.clock.now()}
        )
        store.save_run(self.run)
        self.services.event(self.run, "run.started", "destroy started")
        failure = None
        for component in reversed(self.components):
            failure = self._destroy(component)
            if failure is not None or self.services.cancel.is_set():
                break
        cancelled = failure is None and self.services.cancel.is_set()
        return self._finish(failure, cancelled=cancelled)

    def _destroy(self, component: ComponentEntry) -> str | None:
        name = component.manifest.name
        store = self.services.store
        done = self.runner.book.find(name, StepAction.DESTROY)
        state = store.get_component(self.run.environment, name)
        if state is None or (done is not None and done.status is StepStatus.SUCCEEDED):
            return None
        step = self.runner.book.new(self.run, name, StepAction.DESTROY, previous_state=state)
        try:
            call = driver_call(
                component,
                "destroy",
                run=self.run,
                revision=self.run.revision,
                checkout=self.target.checkout,
                inputs=state.inputs,
                state_root=self.services.state_root,
            )
        except StepError as error:
            self.runner.save(
                step,
                status=StepStatus.FAILED,
                error=str(error),
                finished_at=self.services.clock.now(),
            )
            return f"{name}: {error}"
        step, result = self.runner.call(step, call, component.manifest.spec.retry)
        step = self.runner.finish(step, result)
        with store.transaction():
            store.save_step(step)
            if result.succeeded:
                store.delete_component(self.run.environment, name)
            self.services.event(
                self.run,
                "component.destroyed" if result.succeeded else "component.failed",
                f"{name} destroyed"
                if result.succeeded
                else f"{name}: destroy failed: {step.error}",
                component=name,
            )
        return None if result.succeeded else f"{name}: {step.error}"

    def _finish(self, failure: str | None, *, cancelled: bool) -> Run:
        store = self.services.store
        now = self.services.clock.now()
        status = (
            RunStatus.CANCELLED
            if cancelled
            else (RunStatus.FAILED if failure else RunStatus.SUCCEEDED)
        )
        run = self.run.model_copy(
            update={
                "status": status,
                "error": failure or ("cancelled" if cancelled else None),
                "finished_at": now,
            }
        )
        environment = store.get_environment(run.environment) or EnvironmentState(
            name=run.environment, updated_at=now
        )
        if not store.list_components(run.environment):
            environment = environment.model_copy(
                update={
                    "revision": None,
                    "previous_revision": None,
                    "status": EnvironmentStatus.UNKNOWN,
                    "updated_at": now,
                }
            )
        elif status is not RunStatus.SUCCEEDED:
            environment = environment.model_copy(
                update={"status": EnvironmentStatus.FAILED, "updated_at": now}
            )
        with store.transaction():
            store.save_run(run)
            store.save_environment(environment)
            self.services.event(
                run,
                "run.finished",
                f"destroy {status.value}" + (f": {run.error}" if run.error else ""),
                status=status.value,
            )
        return run
