"""The worker's side of the daemon: what happens to one request when its turn comes.

Pipeline: queue -> worker -> **handle** -> run -> report. Each environment's worker hands its
requests here one at a time. A request is marked running in its record, admitted again (the
state may have changed since it was asked for), and then started through the workspace by
the handler of its kind (one table, `RequestKind` -> handler): a resume, a saved plan or an
apply, a plan, a destroy, a promotion, a drift check. What comes of it is written to its
record: done with its runs, waiting (with when to look again), retrying after a transient
fault (with backoff), or refused with the reason; the run's metrics are told to the recorder
port (engine.recording) and the follow-ups it calls for (promoting its followers) are
scheduled. The daemon (runtime.service.daemon) wires this to the queues; nothing here knows the API
exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gitopsd.adapters import faults
from gitopsd.engine.queueing import Priority, Request
from gitopsd.engine.recording import Recorder
from gitopsd.errors import BusyError, ConflictError, GitopsdError, InvalidRequestError
from gitopsd.model.state import (
    REMEDIATION_TRIGGER,
    DriftStatus,
    RequestKind,
    Run,
    RunAction,
    RunStatus,
)
from gitopsd.runtime import logs
from gitopsd.runtime.drift import drift_reports, drifting
from gitopsd.runtime.promotion import admission, promoting, saved_plans
from gitopsd.runtime.records.pages import each_run, each_step
from gitopsd.runtime.runs import leases
from gitopsd.runtime.runs.workspace import Workspace
from gitopsd.runtime.service.followups import BUSY_RETRY, COMPLETED, FollowUps
from gitopsd.runtime.service.intake import Intake
from gitopsd.runtime.service.reconciling import Reconciler

log = logging.getLogger(__name__)
AUTOMATIC = frozenset({"commit", "promotion", "schedule"})  # triggers suspension holds
_CHOSEN = (RequestKind.APPLY, RequestKind.PROMOTE)  # bring a revision someone chose
# what ends an operator's promotion with its reason, or holds it as itself (`_promote`)
_OPERATOR_HOLDS = (
    admission.Wait.REFUSED, admission.Wait.NOTHING, admission.Wait.WINDOW, admission.Wait.SOAK,
)  # fmt: skip


def admit(workspace: Workspace, request: Request, *, record: bool = True) -> admission.Admission:
    """The admission of `request` (runtime.promotion.admission): READY with the revision to run, a
    wait with its reason and `look_again_at`, NOTHING or REFUSED with the reason. Commits, auto
    promotions and scheduled checks are automatic: suspension holds them."""
    return admission.admit(
        workspace,
        request.environment,
        action=request.action,
        revision=request.revision,
        forced=request.forced,
        actor=request.actor,
        automatic=request.trigger in AUTOMATIC,
        record=record,
    )


class Handling:
    """Handles one request at a time for the daemon's workers (see the module doc)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        intake: Intake,
        reconciler: Reconciler,
        followups: FollowUps,
        recorder: Recorder,
        monotonic: Callable[[], float],
        count_failure: Callable[[], None],
        wake_outbox: Callable[[], None],
    ) -> None:
        self.workspace = workspace
        self.intake = intake
        self.reconciler = reconciler
        self.followups = followups
        self.recorder = recorder
        self._monotonic = monotonic
        self._count_failure = count_failure
        self._wake_outbox = wake_outbox
        self._handlers: dict[RequestKind, Callable[[Request], list[Run]]] = {
            RequestKind.RESUME: self._resume,
            RequestKind.PLAN: self._plan,
            RequestKind.APPLY: self._apply,
            RequestKind.DESTROY: self._destroy,
            RequestKind.PROMOTE: self._promote,
            RequestKind.ROLLBACK: self._roll_back,
            RequestKind.DRIFT: self._check_drift,
        }

    def handle(self, request: Request) -> None:
        """Take `request` through its record: running, then done with its runs, or
        waiting, retrying or refused (the worker of its environment calls this)."""
        with logs.run_context(environment=request.environment, run_id=request.id):
            if not self.intake.running(request):
                return  # superseded while it was queued
            runs = self._attempt(request)
        if runs is None:
            return
        self.intake.finished(request, runs)
        for run in runs:
            self._finished(run)
        self._wake_outbox()

    def _attempt(self, request: Request) -> list[Run] | None:
        """The request's runs; None when it is retried later or was refused."""
        try:
            return self._ran_already(request) or self._execute(request)
        except BusyError as error:
            log.warning("%s; trying again in %.0fs", error, BUSY_RETRY)
            self._retry(request, error, delay=BUSY_RETRY)
        except Exception as error:
            if faults.is_transient(error):
                self._retry(request, error)
            elif isinstance(error, GitopsdError):
                self._refuse(request, error)
            else:
                self.intake.failed(request, error)
                raise
        return None

    def _retry(self, request: Request, error: Exception, *, delay: float | None = None) -> None:
        """A transient fault: the request stays visible as retrying, and comes back later
        (scheduled before it is shown, as a wait is)."""
        when = self.intake.next_attempt(request, delay=delay)
        log.warning("%s of %s meets %s; trying again at %s", request.action,
                    request.environment, faults.describe(error), f"{when:%H:%M:%S}")  # fmt: skip
        self.followups.retry_at(when, request)
        self.intake.retrying(request, error, at=when)

    def _refuse(self, request: Request, error: GitopsdError) -> None:
        self._count_failure()
        log.error("%s refused: %s", request.action, error)
        self.intake.refused(request, error)
        self.reconciler.event(
            request.environment, "request.refused", str(error), request=request.id
        )

    def _ran_already(self, request: Request) -> list[Run]:
        """The run an earlier attempt of `request` started under its id, finished (resumed
        first if a fault stopped it): a retried request is done once its run is, and its id
        never starts a second run, which took the first one's record and steps (all done) and
        ended at once, `verified` at the request's revision over whatever ran since."""
        run = self.workspace.store.get_run(request.id)
        if run is None:
            return []
        if not run.status.is_finished:
            self.workspace.resume_unfinished(request.environment)
            run = self.workspace.store.get_run(request.id) or run
        return [run]

    def _execute(self, request: Request) -> list[Run]:
        """The handler of the request's kind starts its runs (see `_handlers`)."""
        handler = self._handlers.get(request.action)
        if handler is None:  # remediate: admitted where a drift check asks, never queued
            raise InvalidRequestError(f"a {request.action} request is not queued work")
        return handler(request)

    def _resume(self, request: Request) -> list[Run]:
        return self.workspace.resume_unfinished(request.environment)

    def _plan(self, request: Request) -> list[Run]:
        admitted = self._admitted(request)
        if admitted is None:
            return []
        environment, options = request.environment, _run_options(request)
        return [self.workspace.plan(environment, revision=admitted.revision, **options)[0]]

    def _apply(self, request: Request) -> list[Run]:
        if request.plan is not None:  # its own rule: refused once stale (saved_plans)
            return self._apply_plan(request, request.plan)
        if self._overtaken(request):
            return []
        resumed = self._resumed_first(request)
        admitted = self._admitted(request)
        if admitted is None:
            return resumed
        run = self.workspace.apply(
            request.environment,
            revision=admitted.revision,
            forced=admitted.forced,
            **_run_options(request),
        )
        return [*resumed, run]

    def _destroy(self, request: Request) -> list[Run]:
        if self._admitted(request) is None:
            return []
        return [self.workspace.destroy(request.environment, **_run_options(request))]

    def _admitted(self, request: Request) -> admission.Admission | None:
        """The admission of a plan, apply or destroy, READY; None when there is nothing to
        run now: a commit a resumed run already reached, a wait (recorded, asked again), or
        a wait for approvals (the request ended: `_left_to_approvals`)."""
        if request.priority is Priority.COMMIT and self.reconciler.is_at(
            request.environment, request.revision
        ):
            return None  # a resumed run got there first
        if request.trigger == "commit" and self._behind_head(request):
            return None
        admitted = admit(self.workspace, request)
        if admitted.wait is admission.Wait.APPROVAL:
            self._left_to_approvals(request, admitted)
            return None
        if admitted.wait is not admission.Wait.READY:
            self._not_ready(admitted, request)
            return None
        if request.priority is Priority.COMMIT:
            waited = self._monotonic() - request.seen_at
            self.recorder.commit_reached_apply(request.environment, waited)
        return admitted

    def _behind_head(self, request: Request) -> bool:
        """Whether a commit's request is for a revision the branch has moved past (ended as
        superseded if so): one that came back from a retry after the newer commit's request
        was made (it was running then, not queued, so nothing superseded it) would otherwise
        apply the older revision over the newer one."""
        head = self.reconciler.head
        if head is None or request.revision is None or head == request.revision:
            return False
        log.info("%s of %s: the branch has moved on to %s; not run", request.action,
                 request.revision[:12], head[:12])  # fmt: skip
        self.superseded(request, by_revision=head)
        return True

    def superseded(
        self, old: Request, *, by_request: Request | None = None, by_revision: str | None = None
    ) -> None:
        """`old` will not run: its record says what replaced it (`by_request`, a newer
        request; else `by_revision`, the branch head; neither: an identical queued request
        absorbed it), and for a commit the audit trail says which revision did."""
        if by_request is not None:
            self.intake.superseded(old, by=by_request.id)
            by_revision = by_request.revision
        elif by_revision is not None:
            outcome = f"superseded by the newer commit {by_revision[:12]}"
            self.intake.superseded(old, by=None, outcome=outcome)
        else:
            self.intake.superseded(old, by=None)
        if old.revision and by_revision:
            self.reconciler.record_superseded(
                old.revision, by=by_revision, environments=[old.environment]
            )

    def _left_to_approvals(self, request: Request, admitted: admission.Admission) -> None:
        """An apply (a saved plan's too) that waits for approvals ends here, as a promotion
        does (`_promote`): the pending approval, recorded by `admit`, keeps who asked, and
        the approval that completes it promotes the revision as a request of its own. Left
        waiting, nothing would look at it again but a restart, which re-queues what is open
        and would run it a second time, after that promotion or a newer one."""
        log.info("%s waits: %s", request.environment, admitted.reason)
        revision = (admitted.revision or "")[:12]
        outcome = (
            f"waits for approvals: {admitted.reason}; the approval that completes them "
            f"promotes {revision} as a request of its own"
        )
        if request.plan is not None:
            outcome += f" (plan {request.plan} is not applied)"
        self.intake.ended(request, outcome=outcome)

    def _apply_plan(self, request: Request, plan_id: str) -> list[Run]:
        """A saved plan's request, admitted like any apply (it carries the plan's revision,
        and ends as an apply does when it waits for approvals); its staleness is checked
        again under the lease."""
        admitted = self._admitted(request)
        if admitted is None:
            return []
        plan = saved_plans.load(self.workspace, request.environment, plan_id)
        run = saved_plans.apply(
            self.workspace,
            plan,
            trigger=request.trigger,
            actor=request.actor,
            forced=admitted.forced,
            run_id=request.id,
        )
        return [run] if run is not None else []

    def _not_ready(self, decision: admission.Admission, request: Request) -> None:
        """A refusal is the request's end (recorded by `handle`), and so is a revision
        blocked for its signature (counted once); a wait asks again when it can end (a
        window opening, a soak ending; approvals submit a promotion). The look again is
        scheduled before the wait is recorded, so whoever sees a request waiting until a
        time can count on it being looked at then."""
        self._count_untrusted(request.environment, decision)
        if decision.wait.ends_request:
            raise ConflictError(decision.reason)
        log.info("%s holds %s: %s", request.environment, request.revision, decision.reason)
        if decision.look_again_at is not None:  # its own look: two held requests keep both
            self.followups.retry_at(decision.look_again_at, request)
        self.intake.waiting(request, reason=decision.reason, until=decision.look_again_at)

    def _promote(self, request: Request) -> list[Run]:
        """A promotion that cannot run now is asked for again when its wait ends: an
        automatic one as a new request, an operator's (API) as itself, keeping its revision;
        an operator's with nothing to take ends saying why (the environment may have moved
        past its revision while it waited). A wait for approvals ends either: the approval
        that completes them promotes."""
        environment = request.environment
        if self._overtaken(request):
            return []
        resumed = self._resumed_first(request)
        decision, run = promoting.promote(
            self.workspace,
            environment,
            revision=request.revision,
            forced=request.forced,
            actor=request.actor,
            automatic=request.trigger in AUTOMATIC,
            run_id=request.id,
        )
        log.debug("promotion of %s: %s", environment, decision.reason)
        self._count_untrusted(environment, decision)
        if decision.superseded:
            self.recorder.promotion_ended(environment, "superseded")
        if run is not None:
            result = "promoted" if run.status is RunStatus.SUCCEEDED else "failed"
            self.recorder.promotion_ended(environment, result)
        elif request.priority is Priority.OPERATOR and decision.wait in _OPERATOR_HOLDS:
            self._not_ready(decision, request)  # refused, or looked at again on its own job
        elif decision.look_again_at is not None:
            self.followups.later(decision.look_again_at, self.followups.promotion(environment))
        return [*resumed, run] if run is not None else resumed

    def _resumed_first(self, request: Request) -> list[Run]:
        """Automatic work is admitted once the runs a stopped process left are resumed (the
        daemon's start resumes first too): how a resumed run ends is what admission weighs,
        and a resumed run of the same revision that fails or was cancelled is its try.
        A person's request resumes them under its lease, then runs as asked. A run a live
        process is doing (a person's `gitopsd apply`) is not waited for here: admission
        goes on, and a run it admits finds the environment busy, as before."""
        workspace, environment = self.workspace, request.environment
        if request.trigger not in AUTOMATIC or not workspace.store.unfinished_runs(environment):
            return []  # the usual case: one query, no lease read
        if leases.held_by_a_live_process(workspace.store, environment, clock=workspace.clock):
            return []
        return workspace.resume_unfinished(environment)

    def _overtaken(self, request: Request) -> bool:
        """Whether `request` is superseded (and ended so) by an apply that chose a revision
        (not a drift remediation) the environment started since it was made: a promotion an
        approval completed, by any such apply; a person's apply or promotion (held by a window
        or a soak, or queued), by one asked for after it (a rollback, a forced apply on the
        command line): run after that, it took the environment back from the later choice
        (from a rollback's revision to the one rolled back from), with nobody asking again."""
        if request.trigger != COMPLETED and (
            request.action not in _CHOSEN or request.trigger in AUTOMATIC
        ):
            return False
        since = self._applied_since(request)
        if since is None:
            return False
        if request.trigger != COMPLETED and self._asked_after(since, request):
            return False  # that run's request was made first, and only started later
        log.info("%s has run %s (%s) since %s of %s was asked for: not run",
                 request.environment, since.id, since.trigger, request.action,
                 (request.revision or "")[:12])  # fmt: skip
        self.intake.superseded(request, by=since.id)
        return True

    def _asked_after(self, run: Run, request: Request) -> bool:
        """Whether `request` was made after the request of `run` (through the daemon, the
        run has its request's id; one started on the command line had none)."""
        store = self.workspace.store
        ran, made = store.get_request(run.id), store.get_request(request.id)
        return ran is not None and made is not None and ran.created_at <= made.created_at

    def _applied_since(self, request: Request) -> Run | None:
        """The apply that chose a revision (not a drift remediation, which re-applies the one
        the environment is at) the environment started since `request` was made, if any: a
        promotion an approval completed is then not run, lest a second approval completing
        at the same moment run the revision twice, or one taken after a newer promotion (or
        a rollback) take the environment back."""
        made = self.workspace.store.get_request(request.id)
        if made is None:
            return None
        for run in each_run(self.workspace.store, request.environment, action=RunAction.APPLY):
            if run.created_at < made.created_at or run.id == request.id:
                return None
            if run.trigger != REMEDIATION_TRIGGER:
                return run
        return None

    def _roll_back(self, request: Request) -> list[Run]:
        """A rollback an operator asked for through the API (admitted again here)."""
        if request.revision is None:
            raise InvalidRequestError("a rollback names the revision to return to")
        run, _ = promoting.roll_back(
            self.workspace,
            request.environment,
            to=request.revision,
            actor=request.actor,
            run_id=request.id,
        )
        return [run]

    def _count_untrusted(self, environment: str, decision: admission.Admission) -> None:
        """A revision blocked for its signature counts once, when first recorded."""
        if decision.first_blocked:
            self.recorder.revision_untrusted(environment)

    def _check_drift(self, request: Request) -> list[Run]:
        environment = request.environment
        report = drifting.check_now(
            self.workspace,
            environment,
            repository=self.reconciler.repository,
            remediate=request.remediate,
            actor=request.actor,
            automatic=request.trigger in AUTOMATIC,
        )
        if report.repaired:  # the check that found what the remediation repaired
            self.recorder.drift_checked(environment, DriftStatus.DRIFTED.value)
        self.recorder.drift_checked(environment, report.result.value)
        drift_reports.write(self.workspace.data_dir / "reports", report)
        log.info("%s", drift_reports.one_line(report))
        return [report.remediation] if report.remediation else []

    def _finished(self, run: Run) -> None:
        if run.status is not RunStatus.SUCCEEDED:
            self._count_failure()
        self.recorder.run_finished(run, each_step(self.workspace.store, run.id))
        if run.status is RunStatus.SUCCEEDED and run.action is RunAction.APPLY:
            self.followups.promote_followers(run.environment)


def _run_options(request: Request) -> dict[str, Any]:
    """What every run a request starts takes from it: its components, who and what asked,
    and the id handed out for it."""
    return {
        "components": request.components,
        "trigger": request.trigger,
        "actor": request.actor,
        "run_id": request.id,
    }
