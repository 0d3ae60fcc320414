"""Audit events that are not a run's own: promotion decisions, approvals, drift checks,
superseded or invalid revisions. (A run's events go through `steps.Services.event`.)

Every one is appended to the store's audit trail (`gitopsd history`, `GET /api/v1/events`)
and logged on `gitopsd.audit`, so the daemon's log and a terminal's progress show it too.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from gitopsd.engine.ports import Clock, StateStore
from gitopsd.model.state import Event

log = logging.getLogger("gitopsd.audit")


class Recorder(Protocol):
    """What records an event: a workspace has both."""

    @property
    def store(self) -> StateStore: ...

    @property
    def clock(self) -> Clock: ...


def record(
    where: Recorder,
    environment: str | None,
    kind: str,
    message: str,
    *,
    actor: str = "gitopsd",
    **data: Any,
) -> None:
    log.info(message, extra={"environment": environment, "event": kind})
    where.store.append_event(
        Event(
            at=where.clock.now(),
            environment=environment,
            actor=actor,
            kind=kind,
            message=message,
            data=data,
        )
    )
