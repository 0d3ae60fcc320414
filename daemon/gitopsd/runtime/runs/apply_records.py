"""The first and last records of every run, and what they say about the environment.

Every action (plan, apply, destroy, prune, remediation) starts and ends here, with its
`run.started` and `run.finished` events; a plan leaves the environment as it is, a destroy
that removed everything leaves it unknown (see `_after_destroy`). Its end also forgets the
process groups recorded for its drivers (runtime/runs/orphan_drivers.py).

Pipeline: **start** -> walk -> gates -> **finish**. Starting marks the run running and the
environment reconciling, in one transaction with the audit event; a resumed run only notes
that it resumed. Finishing records the run's outcome with the environment's new state in one
transaction, so the two can never disagree after a crash:
- succeeded: verified at the run's revision, the old revision kept as the rollback target;
- succeeded, but a run of some components left others not applied at its revision: failed
  at it, not verified (an `environment.incomplete` event names them);
- applied everything but failed a gate: failed, at the run's revision;
- anything else: failed (or cancelled) at the revision it had.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitopsd.model.state import EnvironmentState, EnvironmentStatus, Run, RunAction, RunStatus
from gitopsd.runtime.records import promotion_records
from gitopsd.runtime.runs.steps import Services


def started(services: Services, run: Run) -> Run:
    """Mark `run` running (or note that a running one resumed); return it as recorded.

    The environment's record is read inside the transaction that writes it, so a change
    made meanwhile by another writer (a suspension through the API) is never overwritten."""
    if run.status is RunStatus.RUNNING:
        services.event(run, "run.resumed", f"resuming run {run.id}")
        return run
    now = services.clock.now()
    run = run.model_copy(update={"status": RunStatus.RUNNING, "started_at": now})
    with services.store.transaction():
        services.store.save_run(run)
        if run.action is RunAction.APPLY:
            environment = environment_state(services, run.environment).model_copy(
                update={"status": EnvironmentStatus.RECONCILING, "updated_at": now}
            )
            services.store.save_environment(
                promotion_records.on_started(services.store, environment, run)
            )
        services.event(
            run,
            "run.started",
            f"{run.action.value} of {run.revision[:12]} started",
            trigger=run.trigger,
            forced=run.forced,
        )
    return run


def finished(
    services: Services,
    run: Run,
    status: RunStatus,
    error: str | None,
    *,
    applied: bool = False,
    behind: Sequence[str] = (),
) -> Run:
    """Record the end of `run` and where it leaves its environment (see the module doc);
    `behind`: components a run of some of them left not applied at its revision, which
    keep a succeeded run from verifying it."""
    ended = {"status": status, "error": error, "finished_at": services.clock.now()}
    with services.store.transaction():  # read and written together: see `started`
        # the cancel flag is the canceller's (runtime.service.cancelling): as stored, not as
        # this walk read it when it started
        stored = services.store.get_run(run.id)
        asked = run.cancel_requested or (stored is not None and stored.cancel_requested)
        run = run.model_copy(update={**ended, "cancel_requested": asked})
        services.store.save_run(run)
        services.store.forget_driver_processes(run.id)  # none of them runs any more
        environment = _environment_after(services, run, applied=applied, behind=behind)
        if environment is not None:
            services.store.save_environment(environment)
        if behind:
            services.event(
                run,
                "environment.incomplete",
                f"{run.environment} is not verified at {run.revision[:12]}: "
                f"{', '.join(behind)} not applied at it",
                components=list(behind),
            )
        services.event(
            run,
            "run.finished",
            f"{run.action.value} {run.status.value}" + (f": {run.error}" if run.error else ""),
            status=run.status.value,
        )
    return run


def _environment_after(
    services: Services, run: Run, *, applied: bool, behind: Sequence[str]
) -> EnvironmentState | None:
    """The environment's record once `run` ended; None when the run leaves it as it is."""
    if run.action is RunAction.PLAN:
        return None
    environment = environment_state(services, run.environment)
    if run.action is RunAction.DESTROY:
        return _after_destroy(services, run, environment)
    if run.status is RunStatus.SUCCEEDED or applied:
        moved = environment.revision not in (None, run.revision)
        previous = environment.revision if moved else environment.previous_revision
        verified = run.status is RunStatus.SUCCEEDED and not behind
        changes = {
            "revision": run.revision,
            "previous_revision": previous,
            "status": EnvironmentStatus.VERIFIED if verified else EnvironmentStatus.FAILED,
        }
    else:
        changes = {"status": EnvironmentStatus.FAILED}
    environment = environment.model_copy(update={**changes, "updated_at": services.clock.now()})
    return promotion_records.on_finished(services.store, environment, run)


def _after_destroy(services: Services, run: Run, environment: EnvironmentState) -> EnvironmentState:
    """Nothing left: unknown, at no revision; a destroy that did not finish: failed."""
    now = services.clock.now()
    if not services.store.list_components(run.environment):
        return environment.model_copy(
            update={
                "revision": None,
                "previous_revision": None,
                "status": EnvironmentStatus.UNKNOWN,
                "updated_at": now,
            }
        )
    if run.status is not RunStatus.SUCCEEDED:
        return environment.model_copy(
            update={"status": EnvironmentStatus.FAILED, "updated_at": now}
        )
    return environment


def environment_state(services: Services, name: str) -> EnvironmentState:
    """The environment as recorded, or a new one (its first run)."""
    found = services.store.get_environment(name)
    return found or EnvironmentState(name=name, updated_at=services.clock.now())
