"""What an operator asks of the daemon through the API: runs, saved plans, promotions,
rollbacks, drift checks, approvals, suspension, cancelling.

Pipeline: API -> **operator request** -> admit -> queue -> worker. Each request is checked
here (a known environment and components, a revision of the branch) and admitted once
without writing, so the API can answer at once: refused (409 with the reason) or accepted
(202 with the id the run will have). Accepted work is handed to `submit`, the daemon's one
way in (recorded, then queued); the environment's worker admits it again when it takes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from gitopsd.engine import selection
from gitopsd.engine.approving import Person
from gitopsd.engine.queueing import Priority, Request
from gitopsd.errors import ConflictError, GitSourceError, InvalidRequestError
from gitopsd.model.state import RequestKind
from gitopsd.runtime.control import Identity
from gitopsd.runtime.promotion import admission, promoting, saved_plans, suspending
from gitopsd.runtime.records import reports
from gitopsd.runtime.runs import orphans as orphan_rules
from gitopsd.runtime.runs.workspace import Workspace, new_run_id
from gitopsd.runtime.service import cancelling, handling
from gitopsd.runtime.service.followups import FollowUps
from gitopsd.runtime.service.intake import Intake
from gitopsd.runtime.service.reconciling import Reconciler

log = logging.getLogger(__name__)
RUN_ACTIONS = (RequestKind.PLAN, RequestKind.APPLY, RequestKind.DESTROY)  # what the API may ask


class OperatorRequests:
    """The writes of `control.Control`, for one daemon (see the module doc)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        intake: Intake,
        reconciler: Reconciler,
        followups: FollowUps,
        submit: Callable[[Request], None],
        check_environment: Callable[[str], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.workspace = workspace
        self._intake = intake
        self._reconciler = reconciler
        self._followups = followups
        self._submit = submit
        self._check_environment = check_environment
        self._monotonic = monotonic
        self._approving: dict[str, threading.Lock] = {}  # an environment's approvals

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
            raise InvalidRequestError(f"action must be one of {', '.join(RUN_ACTIONS)}")
        self._check_components(environment, components, RequestKind(action))
        if revision and action == RequestKind.DESTROY:  # as `gitopsd destroy`, which has none
            raise InvalidRequestError(
                "a destroy takes no revision: it takes down what the environment runs, with "
                "the revision that applied each component"
            )
        resolved = self._resolve(revision) if revision else None
        request = Request(
            id=new_run_id(self.workspace.clock),
            environment=environment,
            priority=Priority.OPERATOR,
            action=RequestKind(action),
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
        saved = saved_plans.load(self.workspace, environment, plan, reaches=identity.reaches)
        if not saved.has_work:  # nothing to run: marked applied now, as the CLI does
            saved_plans.apply(self.workspace, saved, trigger="api", actor=identity.name)
            return None
        request = Request(
            id=new_run_id(self.workspace.clock),
            environment=environment,
            priority=Priority.OPERATOR,
            action=RequestKind.APPLY,
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

    def promote(
        self, environment: str, *, revision: str | None, force: bool, identity: Identity
    ) -> str:
        """A promotion as `gitopsd promote` makes it, queued: admitted now (409 with the
        reason when refused or there is nothing to promote), and again by the worker, which
        records who forced a window."""
        self._check_environment(environment)
        request = Request(
            id=new_run_id(self.workspace.clock),
            environment=environment,
            priority=Priority.OPERATOR,
            action=RequestKind.PROMOTE,
            revision=self._resolve(revision) if revision else None,
            actor=identity.name,
            trigger="api",
            forced=force,
        )
        return self._queue(request)

    def rollback(self, environment: str, *, revision: str, identity: Identity) -> str:
        """A rollback as `gitopsd rollback` makes it, queued: refused now (409) unless the
        environment verified `revision` before."""
        self._check_environment(environment)
        request = Request(
            id=new_run_id(self.workspace.clock),
            environment=environment,
            priority=Priority.OPERATOR,
            action=RequestKind.ROLLBACK,
            revision=self._resolve(revision),
            actor=identity.name,
            trigger="api",
        )
        return self._queue(request)

    def _queue(self, request: Request) -> str:
        self._admit_now(request)
        self._submit(request)
        log.info("%s queued %s of %s as %s", request.actor, request.action,
                 request.environment, request.id)  # fmt: skip
        return request.id

    def submit_drift_check(
        self, environment: str, *, identity: Identity, remediate: bool = False
    ) -> str:
        self._check_environment(environment)
        request = self._followups.drift_check(
            environment, priority=Priority.OPERATOR, actor=identity.name, remediate=remediate
        )
        self._submit(request)
        return request.id

    def cancel(self, run_id: str, *, identity: Identity) -> dict[str, Any] | None:
        """Cancel the run of that id (runtime.service.cancelling), or its request while it has not
        started; None if neither is known."""
        workspace = self.workspace
        stopped = workspace.lookout.stop_now(run_id)  # a run of this process's: at once
        run = cancelling.cancel_run(
            workspace.store, run_id, actor=identity.name, clock=workspace.clock, stopped=stopped
        )
        if run is None:
            request = self._intake.cancel(run_id, actor=identity.name)
            return None if request is None else reports.request_report(request)
        answer: dict[str, Any] = {"id": run_id, "cancel_requested": True}
        left = not stopped and not run.status.is_finished
        if left and cancelling.left_by_a_stopped_process(
            workspace.store, run, clock=workspace.clock
        ):  # no driver of it runs: its resume closes it, now rather than at the next run
            self._reconciler.ask_to_resume(run.environment, trigger="api", actor=identity.name)
            answer["left_by_a_stopped_process"] = True
        return answer

    def approve(
        self, environment: str, *, revision: str | None, identity: Identity
    ) -> dict[str, Any]:
        self._check_environment(environment)
        approver = Person(identity.name, identity.email)
        # one at a time decides which approval completes them (setdefault: atomic)
        with self._approving.setdefault(environment, threading.Lock()):
            record, missing = promoting.approve(
                self.workspace,
                environment,
                revision=revision,
                approver=approver,
                token=identity.token,
            )
            completed = promoting.completed_promotion(self.workspace, record)
        if completed is not None:
            self._submit(self._followups.completed(environment, completed))
        return {**record.model_dump(mode="json"), "missing": missing}

    def suspend(self, environment: str, *, reason: str, identity: Identity) -> dict[str, Any]:
        self._check_environment(environment)
        suspension = suspending.suspend(
            self.workspace, environment, reason=reason, actor=identity.name
        )
        return {"environment": environment, **suspension.model_dump(mode="json")}

    def resume(self, environment: str, *, identity: Identity) -> dict[str, Any]:
        self._check_environment(environment)
        ended = suspending.resume(self.workspace, environment, actor=identity.name)
        self._ask_candidate(environment)
        return {"environment": environment, "resumed": ended.model_dump(mode="json")}

    def _ask_candidate(self, environment: str) -> None:
        """What suspension held is asked for again: the head for an environment tracking
        the branch, a promotion for an auto-promoted one."""
        repository = self._reconciler.repository
        entry = repository.environments.get(environment) if repository else None
        if entry is None:
            return
        if entry.manifest.upstream is None:
            head = self.workspace.source.head()
            self._reconciler.ask_for_head(environment, head, seen_at=self._monotonic())
        elif entry.manifest.spec.promotion.auto:
            self._submit(self._followups.promotion(environment))

    def _admit_now(self, request: Request) -> admission.Admission:
        """Admission when the request is made, so the API can answer it: refused (or
        nothing to apply, or a commit not signed by a trusted signer) is a 409 with the
        reason; a wait is queued, and the worker admits it again, recording the wait, when
        it takes it."""
        decision = handling.admit(self.workspace, request, record=False)  # or RunRefusedError
        if decision.wait.ends_request:
            raise ConflictError(decision.reason)
        return decision

    def _check_components(
        self, environment: str, components: Sequence[str] | None, action: RequestKind
    ) -> None:
        """Names the environment has at the head; or, for a destroy (and an apply where the
        environment prunes), orphans too: deployed components it no longer has, as the
        command line takes them (docs/runs.md, "Orphans and pruning")."""
        repository = self._reconciler.repository
        if not components or repository is None or environment not in repository.environments:
            return
        names = {c.manifest.name for c in selection.select(repository, environment).components}
        deployed = {state.name for state in self.workspace.store.list_components(environment)}
        orphans = sorted((set(components) - names) & deployed)
        if action is RequestKind.APPLY:
            prunes = repository.environments[environment].manifest.spec.prune
            refusal = orphan_rules.unprunable(environment, orphans, prunes=prunes)
            if refusal is not None:
                raise ConflictError(refusal)
        if action in (RequestKind.DESTROY, RequestKind.APPLY):
            names |= set(orphans)
        unknown = sorted(set(components) - names)
        if unknown:
            raise InvalidRequestError(
                f"not components of {environment}: {', '.join(unknown)} "
                f"(it has {', '.join(sorted(names))})"
            )

    def _resolve(self, revision: str) -> str:
        try:
            return self.workspace.source.resolve(revision)
        except GitSourceError as error:
            raise InvalidRequestError(str(error)) from None
