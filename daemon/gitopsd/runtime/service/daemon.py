"""`gitopsd serve`: react to the branch moving, one worker per environment, answer the API.

Pipeline: git -> **queue** -> worker -> run -> report. The daemon is the thin app around the
run engine (the `Workspace`):
- `HeadWatch` notices a new head (file events or fetches) and the `Reconciler` turns
  it into a commit request for every environment that tracks the branch head;
- the API submits operators' requests; at start, environments with runs a stopped process
  left unfinished get a `resume` request first, then the requests it recorded are queued again;
- every request is recorded by the `Intake` before it is queued (SPEC 3.6), and follows its
  record from queued to running to done, waiting, retrying (a transient fault, with backoff)
  or superseded; the API answers for a request from its record until its run exists;
- each environment's `EnvironmentWorker` takes its requests one at a time and hands them to
  `handling`, which admits each again, starts its run through the workspace and records
  what came of it and its metrics;
- the outbox (`announcing`) passes the audit trail on to commit statuses and notifications,
  on a thread of its own.
This module is the worker side: it owns the queues and workers and how work gets to them.
What the API and /metrics read is the read side (`runtime.service.reads`), answered straight from
the state store (snapshots); what an operator asks through the API is checked and admitted by
`runtime.service.operator_requests` before it is submitted here. Nothing here holds state the store
does not have, except the queues, which are rebuilt from the recorded requests and git on a
restart, and the requests the store could not record yet (kept and retried).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from gitopsd.adapters.scheduling import Jobs
from gitopsd.engine.queueing import Request
from gitopsd.engine.recording import Lead, MakeRecorder
from gitopsd.errors import ConflictError
from gitopsd.runtime.control import Identity, RunLogs
from gitopsd.runtime.runs.workspace import Workspace
from gitopsd.runtime.service import announcing, handling
from gitopsd.runtime.service.followups import FollowUps
from gitopsd.runtime.service.heads import HeadWatch
from gitopsd.runtime.service.intake import Intake
from gitopsd.runtime.service.operator_requests import OperatorRequests
from gitopsd.runtime.service.reads import Reads
from gitopsd.runtime.service.reconciling import Reconciler
from gitopsd.runtime.service.retention import Policy, Retention
from gitopsd.runtime.service.workers import EnvironmentWorker

log = logging.getLogger(__name__)


class Daemon:
    """Implements `control.Control` for the API; `start`, then `stop` (or `run_once`).
    `metrics` makes its recorder (`adapters.metrics.recorder` for Prometheus)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        jobs: Jobs,
        poll_interval: float,
        metrics: MakeRecorder,
        monotonic: Callable[[], float] = time.monotonic,
        delivery: announcing.Delivery | None = None,
        retention: Policy | None = None,
    ) -> None:
        self.workspace = workspace
        self.retention = Retention(
            workspace.store, clock=workspace.clock, policy=retention or Policy()
        )
        self._jobs = jobs
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._workers: dict[str, EnvironmentWorker] = {}
        self._stopping = False
        self._failures = 0
        self.intake = self._new_intake()
        self.reconciler = Reconciler(workspace, submit=self._submit)
        self.followups = FollowUps(
            jobs=jobs,
            clock=workspace.clock,
            submit=self._submit,
            repository=lambda: self.reconciler.repository,
            stopping=lambda: self._stopping,
        )
        self.heads = self._new_head_watch(poll_interval)
        self.reads = Reads(
            workspace,
            intake=self.intake,
            reconciler=self.reconciler,
            git_problem=lambda: self.heads.problem,
        )
        self.recorder = metrics(
            snapshot=self.reads.snapshot, ready=lambda: self.reads.is_ready()[0]
        )
        self.announcing = announcing.Announcing(
            workspace.store,
            self.recorder,
            delivery or announcing.Delivery(),
            notifications=lambda: self.reconciler.notifications,
        )
        self.handling = self._new_handling()
        self.requests = self._new_operator_requests()

    def _new_head_watch(self, poll_interval: float) -> HeadWatch:
        return HeadWatch(
            self.workspace.source,
            clock=self.workspace.clock,
            on_head=lambda head, seen_at: self.reconciler.on_head(head, seen_at=seen_at),
            on_fetch=lambda result: self.recorder.fetched(result),
            jobs=self._jobs,
            poll_interval=poll_interval,
            monotonic=self._monotonic,
        )

    def _new_operator_requests(self) -> OperatorRequests:
        return OperatorRequests(
            self.workspace,
            intake=self.intake,
            reconciler=self.reconciler,
            followups=self.followups,
            submit=self._submit,
            check_environment=self.reads.check_environment,
            monotonic=self._monotonic,
        )

    def _new_handling(self) -> handling.Handling:
        return handling.Handling(
            self.workspace,
            intake=self.intake,
            reconciler=self.reconciler,
            followups=self.followups,
            recorder=self.recorder,
            monotonic=self._monotonic,
            count_failure=self._count_failure,
            wake_outbox=self.announcing.outbox.wake,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load the head's manifests for the read API, starting no work (a standby)."""
        self.reconciler.load(self.workspace.source.head())

    def start(self) -> None:
        """Resume what a stopped process left, reconcile the head, then watch for changes.

        Only the leader of the daemons sharing a store gets here (runtime.service.leadership), so
        the work started below, the outbox that delivers statuses and notifications included, is
        the leader's alone.
        """
        self.announcing.outbox.start()
        head = self.workspace.source.head()
        self.reconciler.start(head, seen_at=self._monotonic(), pick_up=self._pick_up)
        self.announcing.check()
        self.followups.start()
        self.heads.start(head)
        self._jobs.every("retention", self.retention.policy.interval, self.retention.scheduled)
        self._jobs.start()

    def run_once(self, *, timeout: float | None = None) -> bool:
        """`serve --once`: resume, reconcile the head, wait for every worker; True if no run
        failed."""
        self.announcing.outbox.start()
        head = self.workspace.source.head()
        self.reconciler.start(head, seen_at=self._monotonic(), pick_up=self._pick_up)
        self.announcing.check()
        deadline = None if timeout is None else self._monotonic() + timeout
        while not all(worker.is_idle() for worker in self._all_workers()):
            if deadline is not None and self._monotonic() > deadline:
                return False
            time.sleep(0.05)
        self.stop(grace=0)
        return self._failures == 0 and self.reconciler.problem is None

    def stop(self, *, grace: float, kill_grace: float = 15.0) -> None:
        """Take no more work; give running steps `grace` seconds, then stop the drivers and
        leave the runs resumable (the next start finishes them)."""
        with self._lock:
            self._stopping = True
        self.workspace.draining.set()
        self.heads.stop()
        self._jobs.shutdown()
        workers = self._all_workers()
        for worker in workers:
            worker.stop()
        deadline = self._monotonic() + grace
        for worker in workers:
            worker.join(max(0.0, deadline - self._monotonic()))
        # a worker with no request in hand ends by itself at once: only one still running a
        # request has drivers to stop (so `serve --once`, all finished, warns of nothing)
        busy = [w.environment for w in workers if not w.join(0) and w.current is not None]
        if busy:
            log.warning(
                "stopping the drivers of %s after %.0fs; the runs resume at the next start",
                ", ".join(busy),
                grace,
            )
            self.workspace.interrupted.set()
            for worker in workers:
                worker.join(kill_grace)
        self.announcing.outbox.stop()

    def _submit(self, request: Request) -> None:
        """Every way work arrives: record it, then queue it (see `Intake`)."""
        with self._lock:
            if self._stopping:
                raise ConflictError("gitopsd is shutting down")
        self.intake.accept(request)

    def _new_intake(self) -> Intake:
        workspace = self.workspace
        return Intake(
            workspace.store,
            clock=workspace.clock,
            jobs=self._jobs,
            admit=self._enqueue,
            on_superseded=self._superseded,
        )

    def _enqueue(self, request: Request) -> None:
        """Queue a recorded request; the queued requests it replaces are superseded."""
        worker = self._worker(request.environment)
        for superseded in worker.submit(request):
            self._superseded(superseded, request)

    def _superseded(self, old: Request, new: Request) -> None:
        """`new` replaces `old` (`new` is `old` itself when an identical queued request
        absorbed it): recorded by `Handling.superseded`."""
        self.handling.superseded(old, by_request=None if old.id == new.id else new)

    def _pick_up(self) -> list[Request]:
        picked = self.intake.pick_up(seen_at=self._monotonic())
        for request in picked:
            self._submit(request)
        return picked

    def _count_failure(self) -> None:
        with self._lock:  # workers of several environments report at once
            self._failures += 1

    def _worker(self, environment: str) -> EnvironmentWorker:
        with self._lock:
            if self._stopping:
                raise ConflictError("gitopsd is shutting down")
            worker = self._workers.get(environment)
            if worker is None:
                worker = EnvironmentWorker(environment, self.handling.handle)
                self._workers[environment] = worker
                worker.start()
            return worker

    def _all_workers(self) -> list[EnvironmentWorker]:
        with self._lock:
            return list(self._workers.values())

    # --- control.Control: reads answered by the read side, writes by operator requests -------

    @property
    def branch(self) -> str:
        return self.workspace.source.branch

    def is_ready(self) -> tuple[bool, str]:
        return self.reads.is_ready()

    def leadership(self) -> dict[str, Any]:
        return {"role": "leader", "leader": self.workspace.holder}

    def status(self, environment: str | None = None) -> dict[str, Any]:
        return self.reads.status(environment)

    def runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> dict[str, Any]:
        return self.reads.runs(
            environment, limit=limit, cursor=cursor, status=status, action=action
        )

    def run(
        self, run_id: str, *, steps_limit: int = 100, steps_cursor: str | None = None
    ) -> dict[str, Any] | None:
        return self.reads.run(run_id, steps_limit=steps_limit, steps_cursor=steps_cursor)

    def run_logs(self, run_id: str, *, offset: int = 0) -> RunLogs | None:
        return self.reads.run_logs(run_id, offset=offset)

    def events(
        self, environment: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        return self.reads.events(environment, limit=limit, cursor=cursor)

    def metrics(self) -> tuple[bytes, str]:
        return self.recorder.exposition()

    def cancel(self, run_id: str, *, identity: Identity) -> dict[str, Any] | None:
        return self.requests.cancel(run_id, identity=identity)

    def submit_run(
        self,
        environment: str,
        *,
        action: str,
        components: Sequence[str] | None,
        revision: str | None,
        identity: Identity,
    ) -> str:
        return self.requests.submit_run(
            environment, action=action, components=components, revision=revision, identity=identity
        )

    def submit_plan(self, environment: str, *, plan: str, identity: Identity) -> str | None:
        return self.requests.submit_plan(environment, plan=plan, identity=identity)

    def promote(
        self, environment: str, *, revision: str | None, force: bool, identity: Identity
    ) -> str:
        return self.requests.promote(environment, revision=revision, force=force, identity=identity)

    def rollback(self, environment: str, *, revision: str, identity: Identity) -> str:
        return self.requests.rollback(environment, revision=revision, identity=identity)

    def diff(
        self, environment: str, *, old: str | None, new: str | None, other: str | None
    ) -> dict[str, Any]:
        return self.reads.diff(environment, old=old, new=new, other=other)

    def submit_drift_check(
        self, environment: str, *, identity: Identity, remediate: bool = False
    ) -> str:
        return self.requests.submit_drift_check(environment, identity=identity, remediate=remediate)

    def approve(
        self, environment: str, *, revision: str | None, identity: Identity
    ) -> dict[str, Any]:
        return self.requests.approve(environment, revision=revision, identity=identity)

    def suspend(self, environment: str, *, reason: str, identity: Identity) -> dict[str, Any]:
        return self.requests.suspend(environment, reason=reason, identity=identity)

    def resume(self, environment: str, *, identity: Identity) -> dict[str, Any]:
        return self.requests.resume(environment, identity=identity)

    def commits(self, revisions: Sequence[str] = (), *, recent: int = 0) -> list[dict[str, Any]]:
        return self.reads.commits(revisions, recent=recent)

    def graph(self, environment: str) -> dict[str, Any]:
        return self.reads.graph(environment)

    def drift_report(self, environment: str) -> dict[str, Any] | None:
        return self.reads.drift_report(environment)

    def request_fetch(self, reason: str) -> None:
        self.heads.request_fetch(reason)

    def report_lead(self, lead: Lead) -> None:
        """Say in /metrics what `lead` says (runtime.service.leadership knows whether this process
        leads; a daemon on its own leads at epoch 0 without being told)."""
        self.recorder.follow_lead(lead)
