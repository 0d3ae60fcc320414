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
Reads for the API come straight from the state store (snapshots); nothing here holds state
the store does not have, except the queues, which are rebuilt from the recorded requests and
git on a restart, and the requests the store could not record yet (kept and retried).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gitopsd import __version__
from gitopsd.adapters import data_folder
from gitopsd.adapters.gitrepo import GitSourceError
from gitopsd.adapters.metrics import Lead, Metrics
from gitopsd.adapters.scheduling import Jobs
from gitopsd.engine import selection
from gitopsd.engine.approving import Person
from gitopsd.engine.queueing import Priority, Request
from gitopsd.model.state import (
    ComponentState,
    EnvironmentState,
)
from gitopsd.runtime.control import (
    Identity,
    RequestRefusedError,
    UnknownEnvironmentError,
)
from gitopsd.runtime.promotion import admission, promoting, saved_plans, suspending
from gitopsd.runtime.records import reports
from gitopsd.runtime.runs.workspace import RunRefusedError, Workspace, new_run_id
from gitopsd.runtime.service import announcing, cancelling, handling, paging
from gitopsd.runtime.service.followups import FollowUps
from gitopsd.runtime.service.heads import HeadWatch
from gitopsd.runtime.service.intake import Intake
from gitopsd.runtime.service.reconciling import Reconciler
from gitopsd.runtime.service.retention import Policy, Retention
from gitopsd.runtime.service.workers import EnvironmentWorker

log = logging.getLogger(__name__)
RUN_ACTIONS = ("plan", "apply", "destroy")


class Daemon:
    """Implements `control.Control` for the API; `start`, then `stop` (or `run_once`)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        jobs: Jobs,
        poll_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
        delivery: announcing.Delivery | None = None,
        retention: Policy | None = None,
    ) -> None:
        self.workspace = workspace
        self.retention = Retention(
            workspace.store, clock=workspace.clock, policy=retention or Policy()
        )
        self.recorder = Metrics(
            version=__version__, snapshot=self._snapshot, ready=lambda: self.is_ready()[0]
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
        self.heads = HeadWatch(
            workspace.source,
            clock=workspace.clock,
            on_head=lambda head, seen_at: self.reconciler.on_head(head, seen_at=seen_at),
            on_fetch=self._count_fetch,
            jobs=jobs,
            poll_interval=poll_interval,
            monotonic=monotonic,
        )
        self.announcing = announcing.Announcing(
            workspace.store,
            self.recorder,
            delivery or announcing.Delivery(),
            notifications=lambda: self.reconciler.notifications,
        )
        self.handling = handling.Handling(
            workspace,
            intake=self.intake,
            reconciler=self.reconciler,
            followups=self.followups,
            recorder=self.recorder,
            monotonic=monotonic,
            count_failure=self._count_failure,
            wake_outbox=self.announcing.outbox.wake,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load the head's manifests for the read API, starting no work (a standby)."""
        self.reconciler.load(self.workspace.source.head())

    def start(self) -> None:
        """Resume what a stopped process left, reconcile the head, then watch for changes.

        Only the leader of the daemons sharing a store gets here (runtime.service.leadership),
        so the work started below, the outbox that delivers statuses and notifications included, is
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
                raise RequestRefusedError("gitopsd is shutting down", conflict=True)
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
        """`new` replaces `old`: both its record and, for a commit, the audit trail say so
        (`new` is `old` itself when an identical queued request absorbed it)."""
        absorbed = old.id == new.id
        self.intake.superseded(old, by=None if absorbed else new.id)
        if old.revision and new.revision and not absorbed:
            self.reconciler.record_superseded(
                old.revision, by=new.revision, environments=[new.environment]
            )

    def _pick_up(self) -> None:
        for request in self.intake.pick_up(seen_at=self._monotonic()):
            self._submit(request)

    def _count_failure(self) -> None:
        with self._lock:  # workers of several environments report at once
            self._failures += 1

    def _worker(self, environment: str) -> EnvironmentWorker:
        with self._lock:
            if self._stopping:
                raise RequestRefusedError("gitopsd is shutting down", conflict=True)
            worker = self._workers.get(environment)
            if worker is None:
                worker = EnvironmentWorker(environment, self.handling.handle)
                self._workers[environment] = worker
                worker.start()
            return worker

    def _all_workers(self) -> list[EnvironmentWorker]:
        with self._lock:
            return list(self._workers.values())

    # --- control.Control: what the API asks -------------------------------------------------

    @property
    def branch(self) -> str:
        return self.workspace.source.branch

    def is_ready(self) -> tuple[bool, str]:
        """Ready while the store answers and takes requests, the data folder takes writes
        (a byte written and removed per probe), and the branch head was read at the last look
        (a cached answer, refreshed by the head watch: no git call per probe)."""
        try:
            self.workspace.store.list_environments()
        except Exception as error:  # any store failure means not ready, with its reason
            return False, f"the state store does not answer: {error}"
        try:  # a full or read-only data folder fails every run
            data_folder.probe(self.workspace.data_dir)
        except data_folder.DataFolderError as error:
            return False, str(error)
        if self.intake.problem is not None:
            return False, f"the state store does not take writes: {self.intake.problem}"
        if self.heads.problem is not None:
            return False, f"the git source cannot be read: {self.heads.problem}"
        if self.reconciler.repository is None:
            return False, self.reconciler.problem or "the repository is not loaded yet"
        return True, "ready"

    def leadership(self) -> dict[str, Any]:
        return {"role": "leader", "leader": self.workspace.holder}

    def status(self, environment: str | None = None) -> dict[str, Any]:
        if environment is not None:
            self._check_environment(environment)
        return reports.status_report(
            self.workspace.store,
            self.reconciler.repository,
            environment=environment,
            open_requests=self.intake.open_requests,
        )

    def runs(
        self, environment: str | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """Requests not started yet first (queued, waiting, retrying), then run summaries,
        newest first, a page at a time (runtime.service.paging); UnknownEnvironmentError for a name
        neither the manifests nor the store know, as every route taking one."""
        if environment is not None:
            self._check_environment(environment)
        waiting = self.intake.not_started(environment) if cursor is None else []
        store = self.workspace.store
        return paging.runs_page(store, waiting, environment, limit=limit, cursor=cursor)

    def run(
        self, run_id: str, *, steps_limit: int = 100, steps_cursor: str | None = None
    ) -> dict[str, Any] | None:
        """The run of that id with a page of its steps, else the request that will start it
        (an id the API returned is always known)."""
        store = self.workspace.store
        stored = store.get_run(run_id)
        if stored is not None:
            return paging.run_report(
                store, stored, steps_limit=steps_limit, steps_cursor=steps_cursor
            )
        request = self.intake.get(run_id)
        return reports.request_report(request) if request is not None else None

    def cancel(self, run_id: str, *, identity: Identity) -> dict[str, Any] | None:
        """Cancel the run of that id (runtime.service.cancelling), or its request while it has not
        started; None if neither is known."""
        store = self.workspace.store
        run = cancelling.cancel_run(store, run_id, actor=identity.name, clock=self.workspace.clock)
        if run is not None:
            return {"id": run_id, "cancel_requested": True}
        request = self.intake.cancel(run_id, actor=identity.name)
        return None if request is None else reports.request_report(request)

    def events(
        self, environment: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """The audit trail a page at a time; UnknownEnvironmentError as for `runs`."""
        if environment is not None:
            self._check_environment(environment)
        return paging.events_page(self.workspace.store, environment, limit=limit, cursor=cursor)

    def submit_run(
        self,
        environment: str,
        *,
        action: str,
        components: Sequence[str] | None,
        revision: str | None,
        identity: Identity,
    ) -> str:
        self._check_environment(environment)
        if action not in RUN_ACTIONS:
            raise RequestRefusedError(f"action must be one of {', '.join(RUN_ACTIONS)}")
        self._check_components(environment, components)
        resolved = self._resolve(revision) if revision else None
        request = Request(
            id=new_run_id(self.workspace.clock),
            environment=environment,
            priority=Priority.OPERATOR,
            action=action,
            revision=resolved,
            components=tuple(components) if components else None,
            actor=identity.name,
            trigger="api",
        )
        self._admit_now(request)
        self._submit(request)
        log.info("%s queued %s of %s as %s", identity.name, action, environment, request.id)
        return request.id

    def submit_plan(self, environment: str, *, plan: str, identity: Identity) -> str | None:
        self._check_environment(environment)
        saved = saved_plans.load(self.workspace, environment, plan)
        if not saved.has_work:  # nothing to run: marked applied now, as the CLI does
            saved_plans.apply(self.workspace, saved, trigger="api", actor=identity.name)
            return None
        request = Request(
            id=new_run_id(self.workspace.clock),
            environment=environment,
            priority=Priority.OPERATOR,
            action="apply",
            revision=saved.revision,
            components=tuple(names) if (names := saved_plans.components_of(saved)) else None,
            actor=identity.name,
            trigger="api",
            plan=saved.id,
        )
        self._admit_now(request)
        self._submit(request)
        log.info("%s queued plan %s of %s as %s", identity.name, plan, environment, request.id)
        return request.id

    def _admit_now(self, request: Request) -> admission.Decision:
        """Admission when the request is made, so the API can answer it: refused (or
        nothing to apply) is a 409 with the reason; a wait is queued, and the worker admits
        it again, recording the wait, when it takes it."""
        try:
            decision = handling.admit(self.workspace, request, record=False)
        except RunRefusedError as refused:
            raise RequestRefusedError(str(refused), conflict=True) from None
        if decision.wait in (admission.Wait.REFUSED, admission.Wait.NOTHING):
            raise RequestRefusedError(decision.reason, conflict=True)
        return decision

    def suspend(self, environment: str, *, reason: str, identity: Identity) -> dict[str, Any]:
        self._check_environment(environment)
        try:
            suspension = suspending.suspend(
                self.workspace, environment, reason=reason, actor=identity.name
            )
        except suspending.SuspensionRefusedError as refused:
            raise RequestRefusedError(str(refused), conflict=True) from None
        return {"environment": environment, **suspension.model_dump(mode="json")}

    def resume(self, environment: str, *, identity: Identity) -> dict[str, Any]:
        self._check_environment(environment)
        try:
            ended = suspending.resume(self.workspace, environment, actor=identity.name)
        except suspending.SuspensionRefusedError as refused:
            raise RequestRefusedError(str(refused), conflict=True) from None
        self._ask_candidate(environment)
        return {"environment": environment, "resumed": ended.model_dump(mode="json")}

    def _ask_candidate(self, environment: str) -> None:
        """What suspension held is asked for again: the head for an environment tracking
        the branch, a promotion for an auto-promoted one."""
        repository = self.reconciler.repository
        entry = repository.environments.get(environment) if repository else None
        if entry is None:
            return
        if entry.manifest.upstream is None:
            head = self.workspace.source.head()
            self.reconciler.ask_for_head(environment, head, seen_at=self._monotonic())
        elif entry.manifest.spec.promotion.auto:
            self._submit(self.followups.promotion(environment))

    def submit_drift_check(self, environment: str, *, identity: Identity) -> str:
        self._check_environment(environment)
        request = self.followups.drift_check(
            environment, priority=Priority.OPERATOR, actor=identity.name
        )
        self._submit(request)
        return request.id

    def approve(
        self, environment: str, *, revision: str | None, identity: Identity
    ) -> dict[str, Any]:
        self._check_environment(environment)
        approver = Person(identity.name, identity.email)
        try:
            record, missing = promoting.approve(
                self.workspace, environment, revision=revision, approver=approver
            )
        except promoting.ApprovalRefusedError as refused:
            raise RequestRefusedError(str(refused), conflict=refused.conflict) from None
        if not missing:
            self._submit(self.followups.promotion(environment))
        return {**record.model_dump(mode="json"), "missing": missing}

    def request_fetch(self, reason: str) -> None:
        self.heads.request_fetch(reason)

    def metrics(self) -> tuple[bytes, str]:
        return self.recorder.exposition()

    def report_lead(self, lead: Lead) -> None:
        """Say in /metrics what `lead` says (runtime.service.leadership knows whether this process
        leads; a daemon on its own leads at epoch 0 without being told)."""
        self.recorder.lead = lead

    # --- helpers --------------------------------------------------------------------------------

    def _check_environment(self, environment: str) -> None:
        repository = self.reconciler.repository
        known = set(repository.environments) if repository else set()
        known |= {state.name for state in self.workspace.store.list_environments()}
        if environment not in known:
            raise UnknownEnvironmentError(f"unknown environment {environment!r}")

    def _check_components(self, environment: str, components: Sequence[str] | None) -> None:
        repository = self.reconciler.repository
        if not components or repository is None or environment not in repository.environments:
            return
        names = {c.manifest.name for c in selection.select(repository, environment).components}
        unknown = sorted(set(components) - names)
        if unknown:
            raise RequestRefusedError(
                f"not components of {environment}: {', '.join(unknown)} "
                f"(it has {', '.join(sorted(names))})"
            )

    def _resolve(self, revision: str) -> str:
        try:
            return self.workspace.source.resolve(revision)
        except GitSourceError as error:
            raise RequestRefusedError(str(error)) from None

    def _snapshot(self) -> Iterator[tuple[EnvironmentState, list[ComponentState]]]:
        store = self.workspace.store
        for environment in store.list_environments():
            yield environment, store.list_components(environment.name)

    def _count_fetch(self, result: str) -> None:
        self.recorder.fetches.labels(result).inc()
