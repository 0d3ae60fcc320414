"""Destroy runs, and pruning: components torn down in reverse dependency order, state removed.

A destroy stops at the first failure: tearing down a network under a cluster that would
not go away makes things worse. Its steps are recorded when it starts and walked by the one
walker (runtime/runs/walking.py), so a cancel stops it within a second, and each component's
destroy commits with the removal of its state: a resumed destroy continues with the rest.

Every component, an orphan (still deployed, no longer in its environment) or not, is
destroyed with the driver, checkout and inputs of the revision that last applied it:
`elsewhere` carries that revision for each of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitopsd.engine import stepping
from gitopsd.engine.loading import ComponentEntry
from gitopsd.engine.stepping import Node, Part
from gitopsd.model.state import (
    ComponentState,
    Run,
    RunStatus,
    Step,
    StepAction,
    StepStatus,
)
from gitopsd.runtime.runs import apply_records, recalling
from gitopsd.runtime.runs.closing import close_pending, refuse
from gitopsd.runtime.runs.revisions import Revisioned
from gitopsd.runtime.runs.steps import Services, StepBook, StepError, StepRunner, driver_call
from gitopsd.runtime.runs.walking import Walk


def part(component: ComponentEntry) -> Part:
    spec = component.manifest.spec
    return Part(component.manifest.name, tuple(spec.depends_on), spec.on_failure)


def destroy_one(
    runner: StepRunner, component: ComponentEntry, source: Revisioned, state: ComponentState
) -> StepStatus:
    """Destroy one component with `source`'s driver and checkout and its recorded inputs;
    the driver is told `source`'s revision (GITOPSD_REVISION), the one its files are of."""
    services, run = runner.services, runner.run
    name = component.manifest.name
    step = runner.book.new(
        run, name, StepAction.DESTROY, revision=state.revision, previous_state=state
    )
    try:
        inputs = recalling.recalled(state, manifests=services.manifests, digest=services.digest)
        call = driver_call(
            component,
            "destroy",
            run=run,
            revision=source.revision,
            checkout=source.checkout,
            inputs=inputs,
            state_root=services.state_root,
            sensitive=state.sensitive_inputs,
        )
    except StepError as error:
        return refuse(runner, name, StepAction.DESTROY, str(error))
    step, result = runner.call(step, call, component.manifest.spec.retry)
    step = runner.finish(step, result)
    with services.store.transaction():
        services.store.save_step(step)
        if result.succeeded:
            services.store.delete_component(run.environment, name)
        services.event(
            run,
            "component.destroyed" if result.succeeded else "component.failed",
            f"{name} destroyed" if result.succeeded else f"{name}: destroy failed: {step.error}",
            component=name,
        )
    return step.status


class DestroyRun:
    def __init__(
        self,
        services: Services,
        run: Run,
        *,
        components: list[ComponentEntry],
        target: Revisioned,
        elsewhere: Mapping[str, Revisioned] | None = None,
        parallelism: int = 1,
        timeout: float | None = None,
    ) -> None:
        self.services = services
        self.run = run
        self.components = {c.manifest.name: c for c in components}
        self.target = target
        self.elsewhere = dict(elsewhere or {})
        self.parallelism = parallelism
        self.timeout = timeout
        self.runner = StepRunner(services, run, StepBook(services.store.list_steps(run.id)))

    def execute(self) -> Run:
        self.run = apply_records.started(self.services, self.run)
        self.runner.run = self.run
        nodes = stepping.destroy_graph([part(c) for c in self.components.values()])
        with self.services.deciding:  # one run at a time (see Services.deciding)
            self._record(nodes)
        walk = Walk(
            self.services,
            self.run,
            nodes,
            self.runner.book,
            parallelism=self.parallelism,
            timeout=self.timeout,
        )
        ending = walk.walk(self._start, self._refuse)
        stopped = ending.cancelled or ending.timed_out
        close_pending(self.runner, nodes, "not destroyed: the run stopped first", stopped=stopped)
        failed = [key[0] for key in ending.progress.failed]
        if ending.timed_out:
            return self._finish(RunStatus.FAILED, f"run_timeout of {self.timeout:g}s reached")
        if failed:
            return self._finish(RunStatus.FAILED, "; ".join(self._errors(failed)))
        if ending.cancelled or ending.progress.cancelled:
            return self._finish(RunStatus.CANCELLED, "cancelled")
        return self._finish(RunStatus.SUCCEEDED, None)

    def _record(self, nodes: list[Node]) -> None:
        """Every step of the run, in one write; components already gone are skipped."""
        book, store = self.runner.book, self.services.store
        states = {s.name: s for s in store.list_components(self.run.environment)}
        new: list[Step] = []
        for node in nodes:
            if book.find(*node.key) is not None:
                continue
            state = states.get(node.component)
            step = book.new(self.run, node.component, StepAction.DESTROY, previous_state=state)
            if state is None:
                step = step.model_copy(update={"status": StepStatus.SKIPPED, "output": "absent"})
                book.record(step)
            new.append(step)
        store.save_steps(new)

    def _start(self, node: Node) -> StepStatus:
        name = node.component
        state = self.services.store.get_component(self.run.environment, name)
        if state is None:  # gone already: nothing to destroy
            step = self.runner.book.new(self.run, name, StepAction.DESTROY)
            self.runner.save(step, status=StepStatus.SKIPPED, output="absent")
            return StepStatus.SKIPPED
        source = self.elsewhere.get(name, self.target)
        return destroy_one(self.runner, self.components[name], source, state)

    def _refuse(self, node: Node, reason: str) -> StepStatus:
        return refuse(self.runner, node.component, node.action, reason)

    def _errors(self, failed: list[str]) -> list[str]:
        errors = []
        for name in failed:
            step = self.runner.book.find(name, StepAction.DESTROY)
            errors.append(f"{name}: {step.error if step else 'failed'}")
        return errors

    def _finish(self, status: RunStatus, error: str | None) -> Run:
        return apply_records.finished(self.services, self.run, status, error, applied=False)
