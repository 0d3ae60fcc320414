"""Steps that end without their driver: refused before it was called, or closed with a run
that stopped before them or was interrupted while they ran.

One place closes such steps, for every action: what a closed step says and whether its
component is then marked failed is the same whether the walk of an apply, a destroy, a
rollback or a plan left it, or a killed plan did (`Workspace` closes those when the next
run of the environment starts).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from gitopsd.engine.ports import StateStore
from gitopsd.engine.stepping import Node
from gitopsd.model.state import ComponentStatus, Step, StepAction, StepStatus
from gitopsd.runtime.runs.steps import StepRunner

INTERRUPTED = "interrupted: its process was killed, and the run stopped before it ran again"
# a step of these left running may have changed its component: marked failed when closed
CHANGES = (StepAction.APPLY, StepAction.HEALTH, StepAction.DESTROY)


def refuse(runner: StepRunner, name: str, action: StepAction, reason: str) -> StepStatus:
    """A step that cannot be attempted fails without calling a driver."""
    step = runner.book.new(runner.run, name, action)
    with runner.services.store.transaction():
        runner.save(
            step, status=StepStatus.FAILED, error=reason, finished_at=runner.services.clock.now()
        )
        runner.services.event(runner.run, "component.failed", f"{name}: {reason}", component=name)
    return StepStatus.FAILED


def close_pending(runner: StepRunner, nodes: list[Node], reason: str, *, stopped: bool) -> None:
    """The steps of a walk that never started (or were left running), closed when it ends
    (`close_steps`); the run's book learns how."""
    found = (runner.book.find(*node.key) for node in nodes)
    steps = [step for step in found if step is not None]
    now = runner.services.clock.now()
    store, environment = runner.services.store, runner.run.environment
    for step in close_steps(store, environment, steps, reason, stopped=stopped, now=now):
        runner.book.record(step)


def close_steps(
    store: StateStore,
    environment: str,
    steps: Iterable[Step],
    reason: str,
    *,
    stopped: bool,
    now: datetime,
) -> list[Step]:
    """Close every step of `steps` still pending or running, in one write; the closed steps.

    A pending step says `reason`: cancelled when a cancel or the timeout `stopped` the run,
    skipped otherwise. A step still running was left so by a process that was killed, in a
    run that was resumed and stopped before that step ran again (its driver was ended when
    the environment was taken over). Whether it finished is not known: it is closed
    cancelled, and when it may have changed its component, the component is marked failed,
    so the next apply runs it again (a health check that never passed left the component
    `applied`, and the next apply found it unchanged)."""
    status = StepStatus.CANCELLED if stopped else StepStatus.SKIPPED
    closed: list[Step] = []
    interrupted: list[str] = []
    for step in steps:
        if step.status is StepStatus.PENDING:
            closed.append(_closed(step, status, reason, now))
        elif step.status is StepStatus.RUNNING:
            closed.append(_closed(step, StepStatus.CANCELLED, INTERRUPTED, now))
            if step.action in CHANGES:
                interrupted.append(step.component)
    with store.transaction():
        store.save_steps(closed)
        for name in interrupted:
            _mark_failed(store, environment, name, now)
    return closed


def _closed(step: Step, status: StepStatus, output: str, now: datetime) -> Step:
    return step.model_copy(update={"status": status, "output": output, "finished_at": now})


def _mark_failed(store: StateStore, environment: str, name: str, now: datetime) -> None:
    state = store.get_component(environment, name)
    if state is not None and state.status is not ComponentStatus.FAILED:
        failed = state.model_copy(update={"status": ComponentStatus.FAILED, "updated_at": now})
        store.save_component(failed)
