"""Cancel a run: one rule for `gitopsd cancel` and the API's `POST /api/v1/runs/{id}/cancel`.

Pipeline: request -> queue -> run -> **cancel**. A run is cancelled through its record:
`cancel_requested` is set in the state store, and the walker of the run (in this process or
another, the daemon or a CLI command) sees it within a second, sends its drivers SIGTERM,
then SIGKILL after the grace, starts no further step and ends the run `cancelled`. The flag
is read and set in one transaction, so a run that finished meanwhile is never made to look
running again, and the request is recorded in the audit trail with who asked.
"""

from __future__ import annotations

from gitopsd.engine.ports import Clock, StateStore
from gitopsd.errors import ConflictError
from gitopsd.model.state import Event, Run, RunStatus
from gitopsd.runtime.runs import leases


def cancel_run(
    store: StateStore, run_id: str, *, actor: str, clock: Clock, stopped: bool = False
) -> Run | None:
    """Ask the run `run_id` to stop; None if there is no such run, ConflictError if it has
    finished already. Asking twice is asking once. `stopped`: this process has just stopped
    the run's walk itself (the daemon's own run), so a run that ended `cancelled` before the
    flag could be written ended by this request, which is recorded all the same; so is the
    request asked again after the store refused its flag (503), the run stopped by then."""
    with store.transaction():
        run = store.get_run(run_id)
        if run is None:
            return None
        by_this = run.status is RunStatus.CANCELLED and (stopped or not run.cancel_requested)
        if run.status.is_finished and not by_this:
            raise ConflictError(f"run {run_id} already {run.status.value}")
        if run.cancel_requested:
            return run
        run = run.model_copy(update={"cancel_requested": True})
        store.save_run(run)
        store.append_event(
            Event(
                at=clock.now(),
                environment=run.environment,
                run_id=run.id,
                actor=actor,
                kind="run.cancel_requested",
                message=f"{actor} asked to cancel run {run_id}",
            )
        )
    return run


def left_by_a_stopped_process(store: StateStore, run: Run, *, clock: Clock) -> bool:
    """Whether no process walks `run` now (its environment's lease is free, or held by a
    process of this host that is gone): its cancel then stops no driver, and the run is
    closed `cancelled` by the next process that takes the environment."""
    return not leases.held_by_a_live_process(store, run.environment, clock=clock)
