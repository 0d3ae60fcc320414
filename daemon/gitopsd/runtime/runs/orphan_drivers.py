"""No driver outlives its run unnoticed: each call's process group is recorded while it runs,
and whoever takes an environment over ends the ones a dead process left running.

`kill -9` of gitopsd (or of its machine's CI job) leaves the driver it was waiting for
running; a resumed run would start the same component again beside it, two applies at once.
So the group is recorded as soon as the driver is spawned (`recorder`, given to every driver
call of a step), and the records of a run are forgotten together when it ends
(`apply_records.finished`, in the transaction that records its end): a write less per step
than forgetting each call's record after it. A record of a call that has ended is harmless
meanwhile: the runner killed its group when the leader exited, and a takeover checks that a
group still runs before it signals anything. Taking the
environment's lease (`Workspace.lease`: a resume by the next command or the daemon's start, a
takeover of a dead holder, a standby taking over) first ends every recorded group of this host
that still runs - SIGTERM, SIGKILL after the grace, then waits until it is gone - before any
step runs again. A record whose pid is another process's now is dropped without a signal
(`process_groups` compares start times). A record of another host cannot be checked from here:
its holder's lease has expired by the time this one was taken, which is all the waiting the
lease can do, so it is reported and dropped rather than blocking the environment for ever.
"""

from __future__ import annotations

import functools
import logging
import signal
import socket

from gitopsd.adapters.child_processes import signal_group
from gitopsd.adapters.process_groups import GroupState, group_state
from gitopsd.engine.ports import Clock, DriverCall, OnStarted, StartedDriver, StateStore
from gitopsd.errors import OrphanError
from gitopsd.model.state import DriverProcess, Event, Run

KILL_GRACE = 10.0  # as long as a cancelled driver gets (CommandDriverRunner's kill_grace)
KILLED_WAIT = 30.0  # after SIGKILL: only a process stuck in the kernel takes longer
POLL = 0.05
log = logging.getLogger("gitopsd.runs")


@functools.cache
def host() -> str:
    return socket.gethostname()


def recorder(store: StateStore, clock: Clock, run: Run, call: DriverCall) -> OnStarted:
    """A callback for `DriverRunner.run` that records the driver's group as it starts; the
    record stays until the run ends (see the module docstring)."""

    def on_started(driver: StartedDriver) -> None:
        record = DriverProcess(
            host=host(),
            pid=driver.pid,
            started=driver.started,
            environment=run.environment,
            component=call.component,
            action=call.action,
            run_id=run.id,
            recorded_at=clock.now(),
        )
        store.save_driver_process(record)

    return on_started


def end_orphans(
    store: StateStore, environment: str, *, clock: Clock, grace: float = KILL_GRACE
) -> list[DriverProcess]:
    """End every recorded driver of `environment` that still runs, before a step runs again;
    the ones ended (each also an audit event). Raises `OrphanError` if one cannot be."""
    ended = []
    for record in store.list_driver_processes(environment):
        if record.host != host():
            _report(store, clock, record, "driver.orphan_elsewhere", "left on another host")
        else:
            how = _end(record, clock, grace)
            if how is not None:
                ended.append(record)
                _report(store, clock, record, "driver.orphan_ended", f"ended with {how}")
        store.delete_driver_process(record.host, record.pid)
    return ended


def _end(record: DriverProcess, clock: Clock, grace: float) -> str | None:
    """SIGTERM to the group, SIGKILL after `grace`; which signal ended it (None: nothing
    of it ran, or the pid is a stranger's now)."""
    if group_state(record.pid, record.started) is not GroupState.RUNNING:
        return None
    signal_group(record.pid, signal.SIGTERM)
    if _gone_within(record, clock, grace):
        return "SIGTERM"
    signal_group(record.pid, signal.SIGKILL)
    if _gone_within(record, clock, KILLED_WAIT):
        return "SIGKILL"
    raise OrphanError(
        f"the {record.action} driver of {record.component} (pid {record.pid}) that run "
        f"{record.run_id} left still runs after SIGKILL; {record.environment} stays untouched"
    )


def _gone_within(record: DriverProcess, clock: Clock, seconds: float) -> bool:
    waited = 0.0
    while group_state(record.pid, record.started) is GroupState.RUNNING:
        if waited >= seconds:
            return False
        clock.sleep(POLL)
        waited += POLL
    return True


def _report(store: StateStore, clock: Clock, record: DriverProcess, kind: str, how: str) -> None:
    message = (
        f"the {record.action} driver of {record.component} left by run {record.run_id} "
        f"(pid {record.pid} on {record.host}): {how}"
    )
    log.warning(message, extra={"environment": record.environment, "event": kind})
    store.append_event(
        Event(
            at=clock.now(),
            environment=record.environment,
            run_id=record.run_id,
            kind=kind,
            message=message,
            data={
                "component": record.component,
                "action": record.action,
                "pid": record.pid,
                "host": record.host,
            },
        )
    )
