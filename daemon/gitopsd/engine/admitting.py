"""The one admission rule (SPEC 3.3, 3.6): may this work enter this environment now?

Pipeline: request -> **admit** -> queue/run. Every way work arrives (a commit, the API, the
command line, a promotion, a rollback, a schedule, a drift remediation) asks this rule, so
the protections hold on every path. The rules, in the order they are checked:
- an explicit revision must be a commit of the tracked branch;
- suspension holds automatic work (commits, auto promotion, scheduled remediation) only;
- `plan` is read-only: nothing else holds it;
- `rollback` returns only to a revision the environment itself verified before, and is not
  held by windows or approvals;
- `destroy` is held by windows (unless forced), not by the chain or approvals: it removes
  what is there, it brings no new revision in;
- `remediate` re-applies the environment's own revision: held by windows only;
- `apply` and `promote` on an environment with `from: X` are promotions: the revision (the
  newest X verified and held for the soak, or the one asked for) must have been verified by
  X and held for the soak, its approvals complete, and no window in force; one asked for
  that X verified before what the environment runs is refused, and the one it runs and
  verified is nothing to take (it never moves backwards, however long the request waited);
- `apply` on an environment that tracks the branch takes the asked revision or the head,
  held by windows only.
- automatic work (a commit, an auto promotion, the daemon's start) does not take again the
  revision whose last apply in the environment failed or was cancelled: a running daemon
  tries a revision once, and a new revision or a person tries again (otherwise an auto
  promotion of a failing revision was applied and rolled back every 15 s, for ever);
- an environment that requires signed commits (the trust file, engine.signing) is BLOCKED
  from any revision a plan, apply, promotion, rollback or remediation would run whose
  commit is not signed by a trusted signer (a plan runs the revision's driver commands
  too), before approvals or windows are asked: nobody should approve, or wait a window
  for, what will never be applied.
`forced` overrides a window, nothing else. The answer is READY (with the revision), one of
the waits (with the reason and, when known, when to look again), NOTHING (no revision to
take), or REFUSED (with the reason).

Pure: the facts and the clock reading come in; the runtime gathers them and records the
outcome (runtime.promotion.admission).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from gitopsd.engine import approving, promotion, signing, windows
from gitopsd.model.manifests import Approvals, Window
from gitopsd.model.state import EnvironmentStatus, RequestKind

# what admission rules on; a resume or a drift check is not admitted itself (the runs it
# starts are)
ACTIONS = frozenset({
    RequestKind.PLAN, RequestKind.APPLY, RequestKind.DESTROY,
    RequestKind.PROMOTE, RequestKind.ROLLBACK, RequestKind.REMEDIATE,
})  # fmt: skip
# how soon held work is looked at again while suspended: a resume through the daemon asks at
# once, but one made elsewhere (`gitopsd resume` on the store the daemon uses) is seen this late
SUSPENSION_LOOK_AGAIN = timedelta(seconds=15)
# what runs a revision's code in the environment (its drivers, plan included, with the
# environment's credentials): its commit must be trusted where the trust file requires it
RUNS_REVISION = frozenset({
    RequestKind.PLAN, RequestKind.APPLY, RequestKind.PROMOTE, RequestKind.ROLLBACK,
    RequestKind.REMEDIATE,
})  # fmt: skip


class Wait(StrEnum):
    """The outcome; the waiting ones name the environment status they show (if any)."""

    NOTHING = "nothing"
    APPROVAL = "waiting_approval"
    WINDOW = "waiting_window"
    SOAK = "waiting_soak"
    SUSPENDED = "suspended"
    REFUSED = "refused"
    BLOCKED = "blocked"  # the revision's commit is not signed by a trusted signer
    READY = "ready"

    @property
    def is_waiting(self) -> bool:
        return self in (Wait.APPROVAL, Wait.WINDOW, Wait.SOAK, Wait.SUSPENDED)

    @property
    def shown_status(self) -> EnvironmentStatus | None:
        """The environment status this wait shows, if it has one of its own."""
        return _SHOWN_STATUS.get(self)

    @property
    def ends_request(self) -> bool:
        """Nothing will come of the request by waiting: refused, nothing to take, or a
        revision blocked for its signature (only a newer request can move on)."""
        return self in (Wait.REFUSED, Wait.NOTHING, Wait.BLOCKED)


_SHOWN_STATUS = {
    Wait.APPROVAL: EnvironmentStatus.WAITING_APPROVAL,
    Wait.WINDOW: EnvironmentStatus.WAITING_WINDOW,
    Wait.BLOCKED: EnvironmentStatus.BLOCKED,
}


@dataclass(frozen=True)
class Ask:
    """What is asked: `revision` resolved to a full sha (None: what the environment wants);
    `automatic` for work nobody asked for by hand (commit, auto promotion, schedule)."""

    environment: str
    action: RequestKind
    revision: str | None = None
    forced: bool = False
    automatic: bool = False


@dataclass(frozen=True)
class Facts:
    """What the store, git and the manifests say about the environment at `now`."""

    now: datetime
    head: str
    upstream: str | None
    upstream_holds: Sequence[promotion.Hold]
    own_holds: Sequence[promotion.Hold]
    current: str | None
    soak: float
    approvals: Approvals
    windows: Sequence[Window]
    given: Callable[[str], Sequence[approving.Approval]]
    on_branch: Callable[[str], bool]
    suspended: str | None = None  # why, while suspended
    verify: signing.Verify = lambda _revision: None  # the signature check, if required
    # a revision's commit author, where `forbid_author` needs it (None: not asked)
    author: Callable[[str], approving.Person | None] = lambda _revision: None
    # the environment's last apply that brought a revision in, if it failed or was cancelled
    last_failed: FailedApply | None = None


@dataclass(frozen=True)
class FailedApply:
    """An apply of the whole environment at a chosen revision (not a drift remediation) that
    ended failed or cancelled."""

    revision: str
    run_id: str
    ended: str  # `failed` or `cancelled`


@dataclass(frozen=True)
class Admission:
    wait: Wait
    revision: str | None
    reason: str
    look_again_at: datetime | None = None
    approvals: list[approving.Approval] = field(default_factory=list)
    required: int = 0
    superseded: str | None = None  # the revision whose pending approval this one replaced
    forced: bool = False  # ready only because `forced` overrode a window in force
    signature: signing.Signature | None = None  # why BLOCKED: the signature git found
    first_blocked: bool = False  # BLOCKED, and recorded now for the first time


def decide(ask: Ask, facts: Facts) -> Admission:
    """The admission of `ask` (see the module doc for the rules)."""
    decided = _not_again(ask, facts, _decide(ask, facts))
    if ask.action not in RUNS_REVISION or decided.wait.ends_request:
        return decided
    if decided.wait is Wait.SUSPENDED:
        return decided
    # a plan without a revision plans the head (runs.workspace), so the head is checked
    revision = decided.revision or (facts.head if ask.action is RequestKind.PLAN else None)
    if revision is None:
        return decided
    signature = facts.verify(revision)
    reason = signing.untrusted(ask.environment, revision, signature)
    if reason is None:
        return decided
    return Admission(Wait.BLOCKED, revision, reason, signature=signature)


def _not_again(ask: Ask, facts: Facts, decided: Admission) -> Admission:
    """Automatic work that would take the revision whose last apply here failed or was
    cancelled: nothing to take, until a new revision comes or a person asks for it."""
    failed = facts.last_failed
    automatic = ask.automatic and ask.action in (RequestKind.APPLY, RequestKind.PROMOTE)
    if not automatic or failed is None or decided.revision != failed.revision:
        return decided
    if decided.wait.ends_request or decided.wait is Wait.SUSPENDED:
        return decided
    reason = (
        f"the last apply of {failed.revision[:12]} in {ask.environment} ({failed.run_id}) ended"
        f" {failed.ended}: not tried again on its own; a new revision, or a person, tries again"
    )
    return Admission(Wait.NOTHING, None, reason)


def _decide(ask: Ask, facts: Facts) -> Admission:
    if ask.action not in ACTIONS:
        return Admission(Wait.REFUSED, None, f"unknown action {ask.action!r}")
    if ask.revision is not None and not facts.on_branch(ask.revision):
        return Admission(Wait.REFUSED, None, f"{ask.revision[:12]} is not a commit of the branch")
    if ask.automatic and facts.suspended is not None:
        why = f"{ask.environment} is suspended ({facts.suspended})"
        return Admission(Wait.SUSPENDED, ask.revision, why, facts.now + SUSPENSION_LOOK_AGAIN)
    if ask.action is RequestKind.PLAN:
        return Admission(Wait.READY, ask.revision, "a plan changes nothing")
    if ask.action is RequestKind.ROLLBACK:
        return _rollback(ask, facts)
    if ask.action is RequestKind.DESTROY:  # of no revision: each component's own, as applied
        return _windows(ask, facts, None, f"destroy of {ask.environment}")
    if ask.action is RequestKind.REMEDIATE:
        target = ask.revision or facts.current or facts.head
        return _windows(ask, facts, target, f"remediate of {ask.environment}")
    if facts.upstream is None:
        if ask.action is RequestKind.PROMOTE:
            return Admission(Wait.NOTHING, None, f"{ask.environment} follows the branch head")
        target = ask.revision or facts.head
        return _windows(ask, facts, target, f"{target[:12]} from the branch")
    return _promotion(ask, facts, facts.upstream)


def _rollback(ask: Ask, facts: Facts) -> Admission:
    revision = ask.revision
    if revision is None or not any(h.revision == revision for h in facts.own_holds):
        named = revision[:12] if revision else "no revision"
        return Admission(
            Wait.REFUSED,
            None,
            f"{ask.environment} never verified {named}: rollback only returns to a revision "
            "the environment verified before",
        )
    return Admission(Wait.READY, revision, f"rollback to {revision[:12]}")


def _promotion(ask: Ask, facts: Facts, upstream: str) -> Admission:
    """A revision from the upstream: verified and soaked there, approved, no window."""
    if ask.revision is None:
        found = promotion.candidate(
            facts.upstream_holds, soak=facts.soak, now=facts.now, current=facts.current
        )
        if found.revision is None:  # a soak waits for its revision: status names it
            wait = Wait.SOAK if found.soaking else Wait.NOTHING
            return Admission(wait, found.soaking_revision, found.reason, found.look_again_at)
        revision = found.revision
        why = f"{revision[:12]} from {upstream}"
    else:
        revision = ask.revision
        refused = _moved_past(ask, facts, upstream, revision) or _not_soaked(
            ask, facts, upstream, revision
        )
        if refused is not None:
            return refused
        why = f"{revision[:12]} from {upstream}"
    given = approving.counted(facts.approvals, facts.given(revision), facts.author(revision))
    missing = approving.missing(facts.approvals, given)
    if missing:
        reason = f"{revision[:12]} needs {missing} more approval{'s' if missing > 1 else ''}"
        return Admission(Wait.APPROVAL, revision, reason, None, given, facts.approvals.required)
    decided = _windows(ask, facts, revision, why)
    return Admission(
        decided.wait,
        decided.revision,
        decided.reason,
        decided.look_again_at,
        given,
        facts.approvals.required,
        forced=decided.forced,
    )


def _moved_past(ask: Ask, facts: Facts, upstream: str, revision: str) -> Admission | None:
    """An environment never moves backwards, whenever the revision was asked for (a request
    held by a window is admitted again when it opens): one its upstream verified before what
    it runs is refused (only a rollback returns to an older state), and the one it runs and
    verified is nothing to take. One it runs but failed at may be applied again: a retry."""
    current = facts.current
    if current is None or not promotion.behind(facts.upstream_holds, revision, current=current):
        return None
    if revision != current:
        return Admission(
            Wait.REFUSED,
            None,
            f"{ask.environment} runs {current[:12]}, which {upstream} verified after "
            f"{revision[:12]}: an environment never moves backwards (a rollback returns to "
            "an older revision)",
        )
    if not _verified_at(facts.own_holds, current):
        return None
    return Admission(Wait.NOTHING, None, f"{ask.environment} runs {current[:12]} already")


def _verified_at(holds: Sequence[promotion.Hold], revision: str) -> bool:
    """Whether the environment still holds `revision` verified (its newest hold, going on)."""
    newest = max(holds, key=lambda hold: hold.since, default=None)
    return newest is not None and newest.revision == revision and newest.until is None


def _not_soaked(ask: Ask, facts: Facts, upstream: str, revision: str) -> Admission | None:
    """Why an asked revision may not be promoted (yet): never verified upstream, moved
    away from before its soak ended, or still soaking."""
    held = [h for h in facts.upstream_holds if h.revision == revision]
    if not held:
        return Admission(Wait.REFUSED, None, f"{upstream} never verified {revision[:12]}")
    needed = timedelta(seconds=facts.soak)
    if any(h.held_for(facts.now) >= needed for h in held):
        return None
    latest = max(held, key=lambda h: h.since)
    if latest.until is not None:
        return Admission(
            Wait.REFUSED,
            None,
            f"{upstream} moved away from {revision[:12]} before it soaked for {facts.soak:.0f}s",
        )
    until = latest.since + needed
    reason = f"{revision[:12]} soaks in {upstream} until {until:%Y-%m-%d %H:%M:%S}Z"
    return Admission(Wait.SOAK, revision, reason, until)


def _windows(ask: Ask, facts: Facts, revision: str | None, why: str) -> Admission:
    verdict = windows.verdict(facts.windows, facts.now)
    if verdict.blocked and not ask.forced:
        return Admission(Wait.WINDOW, revision, verdict.reason, verdict.until)
    return Admission(Wait.READY, revision, why, forced=verdict.blocked)
