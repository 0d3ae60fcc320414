"""An in-memory state store: the StateStore contract without durability, for tests and demos.

Passes the same contract suite as the SQLite store. A transaction holds one lock and keeps a
copy of the tables to restore if the block raises.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gitopsd.model.state import (
    ApprovalRecord,
    ComponentState,
    DriverProcess,
    EnvironmentState,
    Event,
    Request,
    Run,
    SavedPlan,
    Step,
    VerifiedHold,
)


@dataclass
class _Tables:
    environments: dict[str, EnvironmentState] = field(default_factory=dict)
    # each environment's holds, oldest first; a change replaces the list (a transaction's
    # copy of the tables is shallow)
    holds: dict[str, list[VerifiedHold]] = field(default_factory=dict)
    components: dict[tuple[str, str], ComponentState] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    steps: dict[tuple[str, int], Step] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    approvals: dict[tuple[str, str, str], ApprovalRecord] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)
    plans: dict[str, SavedPlan] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    driver_processes: dict[tuple[str, int], DriverProcess] = field(default_factory=dict)
    last_event_id: int = 0


class MemoryStore:
    def __init__(self) -> None:
        self._tables = _Tables()
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            saved = _Tables(
                **{name: copy.copy(table) for name, table in vars(self._tables).items()}
            )
            try:
                yield
            except BaseException:
                self._tables = saved
                raise

    def fencing(self) -> None:
        """None: a store of one process's own, nothing to fence (engine.ports.Fencing)."""
        return None

    def close(self) -> None:
        """Nothing to release."""

    def get_environment(self, name: str) -> EnvironmentState | None:
        with self._lock:
            return self._tables.environments.get(name)

    def list_environments(self) -> list[EnvironmentState]:
        with self._lock:
            return [self._tables.environments[n] for n in sorted(self._tables.environments)]

    def save_environment(self, state: EnvironmentState) -> None:
        with self._lock:
            self._tables.environments[state.name] = state

    def list_holds(self, environment: str, *, newest: int | None = None) -> list[VerifiedHold]:
        with self._lock:
            kept = self._tables.holds.get(environment, [])
        return list(kept if newest is None else kept[max(0, len(kept) - newest) :])

    def add_hold(self, environment: str, hold: VerifiedHold, *, keep: int) -> None:
        with self._lock:
            added = [*self._tables.holds.get(environment, []), hold]
            self._tables.holds[environment] = added[max(0, len(added) - keep) :]

    def end_hold(self, environment: str, *, at: datetime) -> None:
        with self._lock:
            kept = self._tables.holds.get(environment, [])
            if kept and kept[-1].until is None:
                newest = kept[-1]  # made anew, so that `at` is validated into UTC
                ended = VerifiedHold(revision=newest.revision, since=newest.since, until=at)
                self._tables.holds[environment] = [*kept[:-1], ended]

    def get_component(self, environment: str, name: str) -> ComponentState | None:
        with self._lock:
            return self._tables.components.get((environment, name))

    def list_components(
        self, environment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ComponentState]:
        with self._lock:
            found = [
                s
                for (env, name), s in self._tables.components.items()
                if env == environment and (after is None or name > after)
            ]
        return sorted(found, key=lambda state: state.name)[:limit]

    def component_names(self, environment: str) -> list[str]:
        with self._lock:
            return sorted(name for env, name in self._tables.components if env == environment)

    def save_component(self, state: ComponentState) -> None:
        with self._lock:
            self._tables.components[(state.environment, state.name)] = state

    def save_components(self, states: Sequence[ComponentState]) -> None:
        with self._lock:
            for state in states:
                self._tables.components[(state.environment, state.name)] = state

    def delete_component(self, environment: str, name: str) -> None:
        with self._lock:
            self._tables.components.pop((environment, name), None)

    def save_run(self, run: Run) -> None:
        with self._lock:
            self._tables.runs[run.id] = run

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            return self._tables.runs.get(run_id)

    def list_runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> list[Run]:
        with self._lock:
            runs = [
                r
                for r in self._tables.runs.values()
                if environment in (None, r.environment)
                and status in (None, r.status.value)
                and action in (None, r.action.value)
                and (before is None or (r.created_at, r.id) < before)
            ]
        runs.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return runs[:limit]

    def unfinished_runs(self, environment: str | None = None) -> list[Run]:
        with self._lock:
            runs = [
                r
                for r in self._tables.runs.values()
                if environment in (None, r.environment) and not r.status.is_finished
            ]
        return sorted(runs, key=lambda run: (run.created_at, run.id))

    def save_step(self, step: Step) -> None:
        with self._lock:
            self._tables.steps[(step.run_id, step.index)] = step

    def save_steps(self, steps: Iterable[Step]) -> None:
        with self._lock:
            for step in steps:
                self._tables.steps[(step.run_id, step.index)] = step

    def list_steps(
        self, run_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        with self._lock:
            steps = [
                s
                for (rid, index), s in self._tables.steps.items()
                if rid == run_id and (after is None or index > after)
            ]
        return sorted(steps, key=lambda step: step.index)[:limit]

    def prune_runs(
        self, environment: str, *, created_before: datetime, keep: int, limit: int
    ) -> int:
        with self.transaction():
            runs = self.list_runs(environment, limit=len(self._tables.runs))
            prunable = [
                run
                for position, run in enumerate(runs)
                if run.status.is_finished and (position >= keep or run.created_at < created_before)
            ]
            chosen = {run.id for run in prunable[::-1][:limit]}
            steps = [key for key in sorted(self._tables.steps) if key[0] in chosen][:limit]
            for key in steps:
                del self._tables.steps[key]
            left = {run_id for run_id, _ in self._tables.steps if run_id in chosen}
            emptied = sorted(chosen - left)[: limit - len(steps)]
            for run_id in emptied:
                del self._tables.runs[run_id]
            return len(steps) + len(emptied)

    def history_scopes(self) -> list[str | None]:
        with self._lock:
            found = {run.environment for run in self._tables.runs.values()}
            return list(found | {event.environment for event in self._tables.events})

    def append_event(self, event: Event) -> Event:
        with self._lock:
            self._tables.last_event_id += 1  # ids are never reused, even once pruned
            stored = event.model_copy(update={"id": self._tables.last_event_id})
            self._tables.events.append(stored)
            return stored

    def list_events(
        self,
        environment: str | None = None,
        *,
        run_id: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[Event]:
        with self._lock:
            events = [
                e
                for e in reversed(self._tables.events)
                if environment in (None, e.environment)
                and run_id in (None, e.run_id)
                and (before is None or (e.id or 0) < before)
            ]
        return events[:limit]

    def prune_events(
        self, environment: str | None, *, before: datetime, keep: int, up_to: int, limit: int
    ) -> int:
        with self._lock:
            own = [e for e in reversed(self._tables.events) if e.environment == environment]
            found = [
                e.id or 0
                for position, e in enumerate(own)
                if (e.id or 0) <= up_to and (position >= keep or e.at < before)
            ]
            doomed = set(sorted(found)[:limit])
            self._tables.events = [e for e in self._tables.events if e.id not in doomed]
            return len(doomed)

    def list_events_after(self, after_id: int, *, limit: int) -> list[Event]:
        with self._lock:
            return [e for e in self._tables.events if (e.id or 0) > after_id][:limit]

    def get_cursor(self, name: str) -> int | None:
        with self._lock:
            return self._tables.cursors.get(name)

    def save_cursor(self, name: str, value: int) -> None:
        with self._lock:
            self._tables.cursors[name] = value

    def add_approval(self, approval: ApprovalRecord) -> bool:
        key = (approval.environment, approval.revision, approval.approver)
        with self._lock:
            if key in self._tables.approvals:
                return False
            self._tables.approvals[key] = approval
            return True

    def replace_approval(self, approval: ApprovalRecord) -> None:
        key = (approval.environment, approval.revision, approval.approver)
        with self._lock:
            self._tables.approvals[key] = approval

    def list_approvals(self, environment: str, revision: str) -> list[ApprovalRecord]:
        with self._lock:
            found = [
                a
                for (env, rev, _), a in self._tables.approvals.items()
                if (env, rev) == (environment, revision)
            ]
        return sorted(found, key=lambda approval: approval.at)

    def save_plan(self, plan: SavedPlan) -> None:
        with self._lock:
            self._tables.plans[plan.id] = plan

    def get_plan(self, plan_id: str) -> SavedPlan | None:
        with self._lock:
            return self._tables.plans.get(plan_id)

    def claim_plan(self, plan_id: str, *, at: datetime, run_id: str | None) -> bool:
        with self._lock:
            plan = self._tables.plans.get(plan_id)
            if plan is None or plan.applied_at is not None:
                return False
            self._tables.plans[plan_id] = plan.model_copy(
                update={"applied_at": at, "applied_by": run_id}
            )
            return True

    def save_request(self, request: Request) -> None:
        with self._lock:
            self._tables.requests[request.id] = request

    def get_request(self, request_id: str) -> Request | None:
        with self._lock:
            return self._tables.requests.get(request_id)

    def list_requests(
        self, environment: str | None = None, *, open_only: bool = False, limit: int = 1000
    ) -> list[Request]:
        with self._lock:
            found = [
                r
                for r in self._tables.requests.values()
                if environment in (None, r.environment) and (r.status.is_open or not open_only)
            ]
        return sorted(found, key=lambda request: (request.created_at, request.id))[:limit]

    def forget_closed_requests(self, environment: str, *, keep: int) -> None:
        with self._lock:
            closed = [
                r
                for r in self._tables.requests.values()
                if r.environment == environment and not r.status.is_open
            ]
            closed.sort(key=lambda request: (request.created_at, request.id), reverse=True)
            for forgotten in closed[keep:]:
                del self._tables.requests[forgotten.id]

    def acquire_lease(
        self,
        environment: str,
        holder: str,
        *,
        now: datetime,
        ttl: float,
        takeover: str | None = None,
    ) -> bool:
        with self._lock:
            current = self._tables.leases.get(environment)
            if current is not None and current[1] > now and current[0] not in (holder, takeover):
                return False
            self._tables.leases[environment] = (holder, now + timedelta(seconds=ttl))
            return True

    def release_lease(self, environment: str, holder: str) -> None:
        with self._lock:
            current = self._tables.leases.get(environment)
            if current is not None and current[0] == holder:
                del self._tables.leases[environment]

    def lease_holder(self, environment: str, *, now: datetime) -> str | None:
        with self._lock:
            current = self._tables.leases.get(environment)
            return current[0] if current is not None and current[1] > now else None

    def save_driver_process(self, process: DriverProcess) -> None:
        with self._lock:
            self._tables.driver_processes[(process.host, process.pid)] = process

    def list_driver_processes(self, environment: str) -> list[DriverProcess]:
        with self._lock:
            found = [
                p for p in self._tables.driver_processes.values() if p.environment == environment
            ]
        return sorted(found, key=lambda process: (process.recorded_at, process.host, process.pid))

    def delete_driver_process(self, host: str, pid: int) -> None:
        with self._lock:
            self._tables.driver_processes.pop((host, pid), None)

    def forget_driver_processes(self, run_id: str) -> None:
        with self._lock:
            processes = self._tables.driver_processes
            for key in [k for k, p in processes.items() if p.run_id == run_id]:
                del processes[key]
