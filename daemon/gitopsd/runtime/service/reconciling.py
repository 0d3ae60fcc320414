"""What the branch says, turned into requests: the manifests at the head, and who wants it.

Pipeline: git -> **reconcile** -> queue. The daemon's head watch reports each new head here;
the reconciler loads and validates its manifests (keeping the last valid ones when a commit
breaks them), and asks for an apply of the head in every environment that tracks the branch
head and is not verified at it already. Commits the branch jumped past are recorded as
superseded: nothing the daemon saw disappears without a trace. At start, environments with
runs a stopped process left unfinished are asked to resume first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from gitopsd.engine.loading import Repository
from gitopsd.engine.queueing import Priority, Request
from gitopsd.model.manifests import Notification
from gitopsd.model.state import EnvironmentStatus, RequestKind
from gitopsd.runtime.records import audit
from gitopsd.runtime.runs.workspace import Workspace, new_run_id

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, workspace: Workspace, *, submit: Callable[[Request], None]) -> None:
        self._workspace = workspace
        self._submit = submit
        self._lock = threading.Lock()
        self._repository: Repository | None = None
        self._head: str | None = None
        self._problem: str | None = "the repository is not loaded yet"

    @property
    def repository(self) -> Repository | None:
        """The newest valid manifests seen (None until the first valid head)."""
        return self._repository

    @property
    def notifications(self) -> list[Notification]:
        """The notifications of the newest valid `gitopsd.yaml` (none before it loads)."""
        repository = self._repository
        return repository.settings.notifications if repository is not None else []

    @property
    def head(self) -> str | None:
        """The newest head whose manifests are valid (None until the first)."""
        return self._head

    @property
    def problem(self) -> str | None:
        """Why the newest head is not in force (invalid manifests), or None."""
        return self._problem

    def start(
        self, head: str, *, seen_at: float, pick_up: Callable[[], Sequence[Request]] = list
    ) -> None:
        """Load the head, resume unfinished runs, `pick_up` the requests a stopped process
        recorded (in their order), then reconcile the head: a newer commit then supersedes
        older ones as usual. An environment whose picked-up requests include the head's
        commit is not asked for it again (that one may wait, on a suspension or a window,
        where no queue would see the two are one)."""
        self._refresh(head)
        self._resume_unfinished()
        picked = pick_up()
        asked = {r.environment for r in picked if r.trigger == "commit" and r.revision == head}
        for environment in self.tracking_head():
            if environment not in asked:
                self.ask_for_head(environment, head, seen_at=seen_at)

    def load(self, head: str) -> None:
        """Load the head's manifests only: no request, no event (a standby records nothing)."""
        self._refresh(head, record=False)

    def on_head(self, head: str, *, seen_at: float) -> None:
        """The branch moved to `head` (seen at `seen_at`, monotonic seconds)."""
        old = self._head
        log.info("branch %s is at %s", self._workspace.source.branch, head[:12])
        self._workspace.checkouts.prepare(head)  # ready by the time a run of it starts
        if not self._refresh(head):
            return
        if old is not None:
            for skipped in self._workspace.source.commits_between(old, head):
                self.record_superseded(skipped, by=head, environments=self.tracking_head())
        self._reconcile(head, seen_at=seen_at)

    def tracking_head(self) -> list[str]:
        """Environments without `promotion.from`: they want the branch head (SPEC 3.3)."""
        repository = self._repository
        if repository is None:
            return []
        return sorted(
            name
            for name, entry in repository.environments.items()
            if entry.manifest.upstream is None
        )

    def is_at(self, environment: str, revision: str | None) -> bool:
        """Whether the environment is verified at `revision` already (nothing to do)."""
        state = self._workspace.store.get_environment(environment)
        return bool(
            state and state.revision == revision and state.status is EnvironmentStatus.VERIFIED
        )

    def record_superseded(self, revision: str, *, by: str, environments: Sequence[str]) -> None:
        for environment in environments:
            self.event(
                environment,
                "revision.superseded",
                f"{revision[:12]} superseded by {by[:12]} before it was applied",
                revision=revision,
                by=by,
            )

    def event(self, environment: str | None, kind: str, message: str, **data: Any) -> None:
        """Append a daemon event (not a run's) to the audit trail."""
        audit.record(self._workspace, environment, kind, message, **data)

    def _refresh(self, head: str, *, record: bool = True) -> bool:
        """Load the manifests at `head`; keep serving the last valid ones when they are not."""
        loaded = self._workspace.load_revision(head)
        if not loaded.is_valid:
            problem = f"the manifests at {head[:12]} are invalid: {loaded.problems[0]}"
            self._problem = problem
            more = len(loaded.problems) - 1
            others = f" (and {more} more)" if more else ""
            log.error("%s%s; nothing is applied until a commit fixes them", problem, others)
            if record:
                self.event(None, "revision.invalid", problem, revision=head)
            return False
        with self._lock:
            self._repository, self._head, self._problem = loaded.repository, head, None
        return True

    def _reconcile(self, head: str, *, seen_at: float) -> None:
        for environment in self.tracking_head():
            self.ask_for_head(environment, head, seen_at=seen_at)

    def ask_for_head(self, environment: str, head: str, *, seen_at: float) -> None:
        """A commit request for `environment` to take `head`, unless it is there already."""
        if self.is_at(environment, head):
            return
        request = Request(
            id=new_run_id(self._workspace.clock),
            environment=environment,
            priority=Priority.COMMIT,
            action=RequestKind.APPLY,
            revision=head,
            trigger="commit",
            seen_at=seen_at,
        )
        self._submit(request)

    def _resume_unfinished(self) -> None:
        unfinished = self._workspace.store.unfinished_runs()
        for environment in sorted({run.environment for run in unfinished}):
            self.ask_to_resume(environment, trigger="start")

    def ask_to_resume(self, environment: str, *, trigger: str, actor: str = "gitopsd") -> None:
        """A request to finish the runs a stopped process left in `environment` (at the
        start; or when one of them is cancelled, which closes it)."""
        request = Request(
            id=f"resume-{environment}-{new_run_id(self._workspace.clock)}",
            environment=environment,
            priority=Priority.OPERATOR,
            action=RequestKind.RESUME,
            trigger=trigger,
            actor=actor,
        )
        self._submit(request)
