"""What the HTTP API may ask of a running daemon: read snapshots, submit work, poke git.

The API layer (`gitopsd.api`) talks to the daemon through this protocol only, so the routes can
be tested against a stand-in and the daemon never knows a web framework exists. Every method is
safe to call from any thread; reads come from the state store, writes become requests on the
environment's queue (one worker owns each environment). A standby (another daemon leads the
shared store) answers reads and refuses writes with `StandbyError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gitopsd.errors import StandbyError, UnknownEnvironmentError, UnknownPlanError
from gitopsd.model.state import RequestKind, RequestStatus, RunAction, RunStatus

# the errors `Control`'s methods raise, named here for the API and the daemon
__all__ = [
    "RUN_ACTIONS",
    "RUN_STATUSES",
    "Control",
    "Identity",
    "RunLogs",
    "StandbyError",
    "UnknownEnvironmentError",
    "UnknownPlanError",
]

# what `Control.runs` filters by: the values its entries show (runs, and the requests not
# started yet that the first page lists with their own statuses and kinds)
RUN_STATUSES = tuple(
    dict.fromkeys([*(s.value for s in RunStatus), *(s.value for s in RequestStatus if s.is_open)])
)
RUN_ACTIONS = tuple(dict.fromkeys([*(a.value for a in RunAction), *(k.value for k in RequestKind)]))


@dataclass(frozen=True)
class Identity:
    """Who is asking: a token's owner, or `local` when the API has no tokens file.

    `environments` is the token's reach (its tokens file entry's `environments`); None is
    every environment, including ones added to the repository later. `token` names the token
    the caller authenticated with (None for `local`): an environment with
    `approvals.authenticated` counts only approvals that carry one."""

    name: str
    email: str | None = None
    environments: frozenset[str] | None = None
    token: str | None = None

    def reaches(self, environment: str) -> bool:
        """Whether this identity may see and act on `environment`: the one rule every route
        (API and dashboard) asks, so that a route added later cannot forget a scope."""
        return self.environments is None or environment in self.environments


@dataclass(frozen=True)
class RunLogs:
    """A run's driver output from some offset on: every step that ran, in order, each under a
    header line (`==> apply network`), as the store has it, and the step running now as its
    driver printed it so far. `offset` is where the next read starts (pass it back);
    `finished`: the run has ended, nothing more will come. The text up to any offset never
    changes (but for a step tried again, whose new try replaces the output of the last one),
    so a reader that passes the offsets back sees every character once."""

    text: str
    offset: int
    finished: bool


class Control(Protocol):
    """The daemon as the API sees it."""

    @property
    def branch(self) -> str:
        """The tracked branch (a webhook `push` must name `refs/heads/<branch>`)."""
        ...

    def is_ready(self) -> tuple[bool, str]:
        """Whether the repository is loaded and the store answers, and why not."""
        ...

    def leadership(self) -> dict[str, Any]:
        """`{"role": "leader" or "standby", "leader": the leader's id or None, ...}`: of the
        daemons sharing a state store, only the leader runs work (see
        runtime.service.leadership)."""
        ...

    def status(self, environment: str | None = None) -> dict[str, Any]:
        """`status --output json` (SPEC section 5); UnknownEnvironmentError for a bad name."""
        ...

    def runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> dict[str, Any]:
        """`{"runs": [...], "next_cursor": ...}`: run summaries (no steps), newest first, the
        requests not started yet first on the first page; `cursor` is a page's
        `next_cursor` (runtime.service.paging); InvalidRequestError for a bad one. `status`,
        `action`: only the entries showing that value (InvalidRequestError for one no entry
        can have)."""
        ...

    def run(
        self, run_id: str, *, steps_limit: int = 100, steps_cursor: str | None = None
    ) -> dict[str, Any] | None:
        """One run with a page of its steps and `next_steps_cursor` (or a queued one, status
        `pending`); None if unknown."""
        ...

    def events(
        self, environment: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """`{"events": [...], "next_cursor": ...}`: the audit trail, newest first."""
        ...

    def cancel(self, run_id: str, *, identity: Identity) -> dict[str, Any] | None:
        """Ask the run (or the request not started yet) of that id to stop; None if unknown,
        ConflictError once it has ended."""
        ...

    def submit_run(
        self,
        environment: str,
        *,
        action: str,
        components: Sequence[str] | None,
        revision: str | None,
        identity: Identity,
    ) -> str:
        """Queue an operator's run; returns the id the run will have."""
        ...

    def submit_plan(self, environment: str, *, plan: str, identity: Identity) -> str | None:
        """Queue the apply of saved plan `plan`; returns the id the run will have, or None
        when the plan changes nothing (it is marked applied; no run starts). UnknownPlanError
        for an unknown id; StalePlanError when the plan is stale or another
        environment's. The worker checks it again when it takes the request."""
        ...

    def promote(
        self, environment: str, *, revision: str | None, force: bool, identity: Identity
    ) -> str:
        """Queue a promotion of the upstream's verified revision (or `revision`, which the
        upstream must have verified); returns the id the run will have. ConflictError with
        the reason when admission refuses it now (never verified upstream, nothing to
        promote); `force` overrides a change window only, recorded with who forced it."""
        ...

    def rollback(self, environment: str, *, revision: str, identity: Identity) -> str:
        """Queue a rollback to `revision`, which the environment must have verified before;
        returns the id the run will have, or ConflictError with the reason."""
        ...

    def diff(
        self, environment: str, *, old: str | None, new: str | None, other: str | None
    ) -> dict[str, Any]:
        """`gitopsd diff --output json` plus the commits between as `{sha, subject, author}`:
        the environment's rendered desired state at `old` (default: its revision) and `new`
        (default: what it gets next); with `other`, `other`'s current revision is `new`
        (what this environment lacks that `other` has). UnknownRevisionError for a bad one."""
        ...

    def submit_drift_check(
        self, environment: str, *, identity: Identity, remediate: bool = False
    ) -> str:
        """Queue a drift check of the environment; returns its id. `remediate`: repair the
        drift it finds, as `gitopsd drift --remediate` (also while suspended: a person asks)."""
        ...

    def approve(
        self, environment: str, *, revision: str | None, identity: Identity
    ) -> dict[str, Any]:
        """Record an approval of the pending promotion; ApprovalRefusedError says why not."""
        ...

    def suspend(self, environment: str, *, reason: str, identity: Identity) -> dict[str, Any]:
        """Hold the environment's automatic work (SPEC 3.6); SuspensionRefusedError if it
        is suspended already."""
        ...

    def resume(self, environment: str, *, identity: Identity) -> dict[str, Any]:
        """Restart its automatic work, asking for its current candidate; SuspensionRefusedError
        if it is not suspended."""
        ...

    def commits(self, revisions: Sequence[str] = (), *, recent: int = 0) -> list[dict[str, Any]]:
        """`{"revision", "subject", "author", "date"}` of the branch's `recent` newest commits,
        newest first, then of each of `revisions` not among them."""
        ...

    def graph(self, environment: str) -> dict[str, Any]:
        """`{"environment", "components": [{"name", "layer", "depends_on"}]}` in dependency
        order at the branch head, as `gitopsd graph --format json`."""
        ...

    def drift_report(self, environment: str) -> dict[str, Any] | None:
        """The newest drift report the daemon wrote for the environment (the JSON form of
        runtime.drift.drift_reports), or None before its first check."""
        ...

    def request_fetch(self, reason: str) -> None:
        """Fetch the remote now (a webhook said the branch moved); no-op for a local repo."""
        ...

    def metrics(self) -> tuple[bytes, str]:
        """The Prometheus exposition and its content type."""
        ...

    def run_logs(self, run_id: str, *, offset: int = 0) -> RunLogs | None:
        """The run's driver output from `offset` (a character position) on; None if no run
        or request has that id."""
        ...
