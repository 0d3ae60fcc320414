"""`Control` in memory for the API tests: two environments, canned runs and events, and a log of
every call, so a test can assert what the API asked of the daemon (and that it asked nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gitopsd.errors import (
    ApprovalRefusedError,
    ConflictError,
    GitopsdError,
    RevisionNotFoundError,
    UnknownEnvironmentError,
    UnknownPlanError,
)
from gitopsd.runtime.control import Control, Identity, RunLogs

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _environment(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "revision": "a" * 40,
        "status": "verified",
        "upstream": None if name == "dev" else "dev",
        "pending_approval": None,
        "components": [{"name": "vpc", "status": "applied", "revision": "a" * 40}],
    }


@dataclass
class Call:
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    on_event_loop: bool = False  # whether the call blocked the server's event loop


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class FakeControl:
    """Answers like the daemon; `refuse_*` and `crash` make the next calls fail on purpose."""

    def __init__(self, *, branch: str = "main") -> None:
        self.calls: list[Call] = []
        self.environments = {name: _environment(name) for name in ("dev", "prod")}
        self.stored_runs: list[dict[str, Any]] = [
            {"id": "run-2", "environment": "prod", "status": "pending", "steps": []},
            {"id": "run-1", "environment": "dev", "status": "succeeded", "steps": [{"n": 1}]},
        ]
        self.ready: tuple[bool, str] = (True, "")
        self.role: dict[str, Any] = {"role": "leader", "leader": "host:1:abc"}
        self.refuse_run: GitopsdError | None = None
        self.refuse_approval: ApprovalRefusedError | None = None
        self.crash: Exception | None = None
        self.stored_events: list[dict[str, Any]] | None = None  # None: three of any environment
        self.tracked_branch = branch
        self.logs: dict[str, str] = {"run-1": "==> apply vpc\ncreated vpc-1\n", "run-2": ""}
        self._next_id = 0

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    @property
    def branch(self) -> str:
        return self.tracked_branch

    def is_ready(self) -> tuple[bool, str]:
        self._record("is_ready")
        return self.ready

    def leadership(self) -> dict[str, Any]:
        self._record("leadership")
        return self.role

    def status(self, environment: str | None = None) -> dict[str, Any]:
        self._record("status", environment)
        if environment is None:
            return {"environments": list(self.environments.values())}
        return {"environments": [self._known(environment)]}

    def runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> dict[str, Any]:
        self._record("runs", environment, limit=limit, cursor=cursor, status=status, action=action)
        if environment is not None:
            self._known(environment)
        chosen = [r for r in self.stored_runs if environment in (None, r["environment"])]
        chosen = [r for r in chosen if status in (None, r["status"])]
        chosen = [r for r in chosen if action in (None, r.get("action"))]
        return {"runs": chosen[:limit], "next_cursor": None}

    def run(
        self, run_id: str, *, steps_limit: int = 100, steps_cursor: str | None = None
    ) -> dict[str, Any] | None:
        self._record("run", run_id, steps_limit=steps_limit, steps_cursor=steps_cursor)
        return next((r for r in self.stored_runs if r["id"] == run_id), None)

    def run_logs(self, run_id: str, *, offset: int = 0) -> RunLogs | None:
        """`logs` of the stored runs; finished as the run's status says."""
        self._record("run_logs", run_id, offset=offset)
        run = next((r for r in self.stored_runs if r["id"] == run_id), None)
        if run is None:
            return None
        text = self.logs.get(run_id, "")
        finished = run["status"] in ("succeeded", "failed", "cancelled")
        return RunLogs(text=text[offset:], offset=max(offset, len(text)), finished=finished)

    def events(
        self, environment: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        self._record("events", environment, limit=limit, cursor=cursor)
        if self.stored_events is not None:
            chosen = [e for e in self.stored_events if environment in (None, e["environment"])]
            return {"events": chosen[:limit], "next_cursor": None}
        found = [{"environment": environment or "dev", "kind": "apply", "n": n} for n in range(3)]
        return {"events": found, "next_cursor": None}

    def submit_run(
        self,
        environment: str,
        *,
        action: str,
        components: Sequence[str] | None,
        revision: str | None,
        identity: Identity,
    ) -> str:
        self._record(
            "submit_run",
            environment,
            action=action,
            components=components,
            revision=revision,
            identity=identity,
        )
        self._known(environment)
        if self.refuse_run is not None:
            raise self.refuse_run
        return self._new_id("run")

    def submit_plan(self, environment: str, *, plan: str, identity: Identity) -> str | None:
        """Knows `plan-1` (a run is queued) and `plan-empty` (it changes nothing)."""
        self._record("submit_plan", environment, plan=plan, identity=identity)
        self._known(environment)
        if self.refuse_run is not None:
            raise self.refuse_run
        if plan not in ("plan-1", "plan-empty"):
            raise UnknownPlanError(f"no saved plan {plan!r}")
        return None if plan == "plan-empty" else self._new_id("run")

    def cancel(self, run_id: str, *, identity: Identity) -> dict[str, Any] | None:
        """Knows the stored runs: a finished one is refused (409), an unknown one None."""
        self._record("cancel", run_id, identity=identity)
        run = next((r for r in self.stored_runs if r["id"] == run_id), None)
        if run is None:
            return None
        if run.get("status") in ("succeeded", "failed", "cancelled"):
            raise ConflictError(f"run {run_id} already {run['status']}")
        return {"id": run_id, "cancel_requested": True}

    def promote(
        self, environment: str, *, revision: str | None, force: bool, identity: Identity
    ) -> str:
        self._record("promote", environment, revision=revision, force=force, identity=identity)
        self._known(environment)
        if self.refuse_run is not None:
            raise self.refuse_run
        return self._new_id("run")

    def rollback(self, environment: str, *, revision: str, identity: Identity) -> str:
        self._record("rollback", environment, revision=revision, identity=identity)
        self._known(environment)
        if self.refuse_run is not None:
            raise self.refuse_run
        return self._new_id("run")

    def diff(
        self, environment: str, *, old: str | None, new: str | None, other: str | None
    ) -> dict[str, Any]:
        """Knows the revisions `a` and `b` (and the environments' own, `aaa...`)."""
        self._record("diff", environment, old=old, new=new, other=other)
        self._known(environment)
        if other is not None:
            self._known(other)
        for revision in (old, new):
            if revision not in (None, "a", "b"):
                raise RevisionNotFoundError(f"no commit named {revision!r}")
        return {"environment": environment, "from": old, "to": new or other, "differs": True}

    def submit_drift_check(
        self, environment: str, *, identity: Identity, remediate: bool = False
    ) -> str:
        self._record("submit_drift_check", environment, identity=identity, remediate=remediate)
        self._known(environment)
        return self._new_id("drift")

    def approve(
        self, environment: str, *, revision: str | None, identity: Identity
    ) -> dict[str, Any]:
        self._record("approve", environment, revision=revision, identity=identity)
        self._known(environment)
        if self.refuse_approval is not None:
            raise self.refuse_approval
        return {"environment": environment, "revision": revision, "approvals": [identity.name]}

    def suspend(self, environment: str, *, reason: str, identity: Identity) -> dict[str, Any]:
        self._record("suspend", environment, reason=reason, identity=identity)
        self._known(environment)
        if self.refuse_run is not None:
            raise self.refuse_run
        return {"environment": environment, "reason": reason, "actor": identity.name}

    def resume(self, environment: str, *, identity: Identity) -> dict[str, Any]:
        self._record("resume", environment, identity=identity)
        self._known(environment)
        if self.refuse_run is not None:
            raise self.refuse_run
        return {"environment": environment, "resumed": {"actor": identity.name}}

    def request_fetch(self, reason: str) -> None:
        self._record("request_fetch", reason)

    def metrics(self) -> tuple[bytes, str]:
        self._record("metrics")
        return b"# TYPE gitopsd_build_info gauge\ngitopsd_build_info 1.0\n", PROMETHEUS_TYPE

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(method, args, kwargs, on_event_loop=_on_event_loop()))
        if self.crash is not None:
            raise self.crash

    def _known(self, environment: str) -> dict[str, Any]:
        if environment not in self.environments:
            raise UnknownEnvironmentError(f"unknown environment {environment!r}")
        return self.environments[environment]

    def _new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}-new-{self._next_id}"


def as_control(fake: FakeControl) -> Control:
    """Type-checks that FakeControl satisfies the protocol (mypy on tests/api)."""
    return fake
