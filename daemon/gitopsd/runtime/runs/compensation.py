"""Saga rollback: undo what a failed run changed, component by component, newest first.

When a component fails and its policy is `rollback`, every component the run changed (the
failed one too: a failed apply may have changed half of something) is re-applied as it was
before the run, at the environment's previous revision: that revision's driver and files,
the inputs recorded then (one kept only as a hash rendered again from the manifests it was
applied at: runtime/runs/recalling.py), and the outputs restored. Components the run created are
destroyed. Compensation goes in reverse dependency order and continues past a failure, so
as much as possible is undone; what could not be undone is named in the run's error. The
executor walks these steps like any other (runtime/runs/walking.py): recorded when the rollback
starts, dependents first, and stopped by a cancel; a rollback is not cut short by
`run_timeout`, which would leave the environment half rolled back.
"""

from __future__ import annotations

from gitopsd.engine.loading import ComponentEntry
from gitopsd.engine.ports import DriverResult
from gitopsd.model.state import ComponentStatus, Run, Step, StepAction, StepStatus
from gitopsd.runtime.runs import recalling
from gitopsd.runtime.runs.revisions import Revisioned
from gitopsd.runtime.runs.steps import StepError, StepRunner, driver_call

TOUCHED = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.RUNNING)


def touched(runner: StepRunner, components: list[ComponentEntry]) -> list[ComponentEntry]:
    """The components `run` touched and has not rolled back yet, in dependency order."""
    found = []
    for component in components:
        name = component.manifest.name
        applied = runner.book.find(name, StepAction.APPLY)
        if applied is None or applied.status not in TOUCHED:
            continue
        done = runner.book.find(name, StepAction.ROLLBACK)
        if done is None or done.status not in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            found.append(component)
    return found


def rollback_step(runner: StepRunner, run: Run, name: str, previous: Revisioned) -> Step:
    """The rollback step of `name`, as recorded before it runs: what it restores."""
    applied = runner.book.find(name, StepAction.APPLY)
    before = applied.previous_state if applied is not None else None
    if before is None:  # created by this run: destroyed, at this run's revision
        return runner.book.new(run, name, StepAction.ROLLBACK)
    return runner.book.new(
        run, name, StepAction.ROLLBACK, revision=previous.revision, previous_state=before
    )


def compensate_one(
    runner: StepRunner,
    run: Run,
    component: ComponentEntry,
    *,
    target: Revisioned,
    previous: Revisioned,
) -> StepStatus:
    """Roll back one component the run touched; its rollback step's status."""
    name = component.manifest.name
    applied = runner.book.find(name, StepAction.APPLY)
    assert applied is not None
    try:
        _compensate_one(runner, run, component, applied, target, previous)
    except StepError as error:
        _record_failure(runner, run, name, str(error))
    step = runner.book.find(name, StepAction.ROLLBACK)
    return step.status if step is not None else StepStatus.FAILED


def _compensate_one(
    runner: StepRunner,
    run: Run,
    component: ComponentEntry,
    applied: Step,
    target: Revisioned,
    previous: Revisioned,
) -> bool:
    before = applied.previous_state
    if before is None:
        return _remove_created(runner, run, component, applied, target)
    name = component.manifest.name
    old = previous.repository.components.get(name)
    if old is None:
        raise StepError(f"{name} is not in the previous revision {previous.revision[:12]}")
    services = runner.services
    inputs = recalling.recalled(before, manifests=services.manifests, digest=services.digest)
    step = rollback_step(runner, run, name, previous)
    call = driver_call(
        old,
        "apply",
        run=run,
        revision=previous.revision,
        checkout=previous.checkout,
        inputs=inputs,
        state_root=runner.services.state_root,
        sensitive=before.sensitive_inputs,
    )
    made = old.manifest.spec.sensitive_outputs  # the previous revision's apply may print them
    step, result = runner.call(step, call, old.manifest.spec.retry, made=made)
    step = runner.finish(step, result)
    store = runner.services.store
    restored = before.model_copy(
        update={
            "outputs": result.outputs if result.outputs is not None else before.outputs,
            "status": ComponentStatus.APPLIED if result.succeeded else ComponentStatus.FAILED,
            "updated_at": runner.services.clock.now(),
        }
    )
    with store.transaction():
        store.save_step(step)
        store.save_component(restored)
        runner.services.event(
            run, _kind(result), _message(name, result, previous.revision), component=name
        )
    return result.succeeded


def _remove_created(
    runner: StepRunner, run: Run, component: ComponentEntry, applied: Step, target: Revisioned
) -> bool:
    """A component this run created is destroyed, with what it was created with."""
    name = component.manifest.name
    services = runner.services
    store = services.store
    state = store.get_component(run.environment, name)
    inputs = (
        recalling.recalled(state, manifests=services.manifests, digest=services.digest)
        if state is not None
        else {}
    )
    step = runner.book.new(run, name, StepAction.ROLLBACK)
    call = driver_call(
        component,
        "destroy",
        run=run,
        revision=run.revision,
        checkout=target.checkout,
        inputs=inputs,
        state_root=runner.services.state_root,
        sensitive=state.sensitive_inputs if state else (),
    )
    step, result = runner.call(step, call, component.manifest.spec.retry)
    step = runner.finish(step, result)
    with store.transaction():
        store.save_step(step)
        if result.succeeded:
            store.delete_component(run.environment, name)
        runner.services.event(
            run,
            _kind(result),
            f"{name} was new in this run: destroyed"
            if result.succeeded
            else f"{name} could not be destroyed: {step.error}",
            component=name,
        )
    return result.succeeded


def _record_failure(runner: StepRunner, run: Run, name: str, reason: str) -> None:
    step = runner.book.new(run, name, StepAction.ROLLBACK)
    with runner.services.store.transaction():
        runner.save(
            step, status=StepStatus.FAILED, error=reason, finished_at=runner.services.clock.now()
        )
        runner.services.event(run, "component.rollback_failed", f"{name}: {reason}", component=name)


def _kind(result: DriverResult) -> str:
    return "component.rolled_back" if result.succeeded else "component.rollback_failed"


def _message(name: str, result: DriverResult, revision: str) -> str:
    if result.succeeded:
        return f"{name} rolled back to {revision[:12]}"
    return f"{name} could not be rolled back: {result.error or result.exit_code}"
