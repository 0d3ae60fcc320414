"""The one admission rule through the run engine (issue 16, findings 1 and 9): promotion
state is records, not a replay; every action asks the same rule; suspension holds
automatic work only."""

from __future__ import annotations

import pytest

from gitopsd.engine.approving import Person
from gitopsd.engine.ports import StateStore
from gitopsd.errors import ApprovalRefusedError, RunRefusedError, SuspensionRefusedError
from gitopsd.model.state import (
    REMEDIATION_TRIGGER,
    EnvironmentStatus,
    RequestKind,
    Run,
    RunAction,
    RunStatus,
)
from gitopsd.runtime.promotion import admission, promoting, suspending
from gitopsd.runtime.promotion.admission import Wait
from gitopsd.runtime.records import reports
from gitopsd.runtime.runs.workspace import Workspace
from tests.gitrepos import git
from tests.runtime.test_promotion_flow import ShiftedClock, chain
from tests.runtime.world import World

ALWAYS_DENIED = [{"kind": "deny", "schedule": "* * * * *", "duration": "1h"}]


def prod_status(workspace: Workspace) -> dict[str, object]:
    repository = workspace.load().repository
    found: dict[str, object] = reports.status_report(
        workspace.store, repository, environment="prod"
    )["environments"][0]
    return found


def test_210_refused_approvals_leave_the_pending_approval_shown(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = world.commit(chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    promoting.approve(workspace, "prod", revision=None, approver=Person("alice"))
    for _ in range(210):
        with pytest.raises(ApprovalRefusedError):
            promoting.approve(workspace, "prod", revision=None, approver=Person("mallory"))
    shown = prod_status(workspace)
    assert shown["status"] == "waiting_approval"
    pending = {"revision": sha, "approvals": ["alice"], "required": 2, "asked_by": "local"}
    assert shown["pending_approval"] == pending
    again, _ = promoting.promote(workspace, "prod")  # the daemon's periodic look
    assert again.wait is Wait.APPROVAL
    waiting = [e for e in store.list_events("prod", limit=1000) if e.kind.startswith("promotion.")]
    assert [e.kind for e in waiting] == ["promotion.waiting_approval"]  # once per revision
    _, missing = promoting.approve(workspace, "prod", revision=None, approver=Person("bob"))
    assert missing == 0


def test_a_newer_revision_supersedes_a_pending_approval_after_many_events(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit(chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    for _ in range(210):
        with pytest.raises(ApprovalRefusedError):
            promoting.approve(workspace, "prod", revision=None, approver=Person("mallory"))
    newer = world.commit(chain(size=4))
    workspace.apply("dev")
    pending, _ = promoting.promote(workspace, "prod")
    assert (pending.wait, pending.revision, pending.superseded) == (Wait.APPROVAL, newer, first)
    superseded = [e for e in store.list_events("prod") if e.kind == "approval.superseded"]
    assert [e.data["revision"] for e in superseded] == [first]
    pending_now = promoting.pending_approval(workspace, "prod")
    assert pending_now is not None and pending_now.revision == newer


def test_a_person_asking_for_what_the_automatic_promotion_waits_for_makes_it_theirs(
    world: World, workspace: Workspace
) -> None:
    sha = world.commit(chain(prod={"promotion": {"from": "dev", "auto": True}}))
    workspace.apply("dev")
    promoting.promote(workspace, "prod", automatic=True)  # the daemon's own promotion
    shown = prod_status(workspace)["pending_approval"]
    assert isinstance(shown, dict) and (shown["revision"], shown["asked_by"]) == (sha, None)
    promoting.promote(workspace, "prod", actor="olga")
    promoting.approve(workspace, "prod", revision=None, approver=Person("alice"))
    record, _ = promoting.approve(workspace, "prod", revision=None, approver=Person("bob"))
    completion = promoting.completed_promotion(workspace, record)
    assert completion == promoting.Completion(sha, "olga")
    late, _ = promoting.approve(workspace, "prod", revision=sha, approver=Person("carol"))
    assert promoting.completed_promotion(workspace, late) is None  # complete before carol
    world.commit(chain(prod={"promotion": {"from": "dev", "auto": False}}))
    shown = prod_status(workspace)["pending_approval"]  # olga's ask outlives `auto`
    assert isinstance(shown, dict) and (shown["revision"], shown["asked_by"]) == (sha, "olga")


def test_an_explicit_revision_must_have_soaked_upstream(world: World, workspace: Workspace) -> None:
    clock = ShiftedClock()
    workspace.clock = clock
    soaked = {"promotion": {"from": "dev", "soak": "10m"}, "approvals": {"required": 0}}
    sha = world.commit(chain(prod=soaked))
    workspace.apply("dev")
    soaking = admission.admit(workspace, "prod", revision=sha)
    assert soaking.wait is Wait.SOAK and soaking.look_again_at is not None
    waiting = prod_status(workspace)["waiting"]
    assert isinstance(waiting, dict)
    assert (waiting["kind"], waiting["revision"], waiting["reason"]) == (
        "waiting_soak",
        sha,
        soaking.reason,
    )
    assert waiting["until"] is not None
    newer = world.commit(chain(size=5, prod=soaked))
    workspace.apply("dev")  # dev moved away from sha before it soaked
    clock.offset = 11 * 60
    moved = admission.admit(workspace, "prod", revision=sha)
    assert moved.wait is Wait.REFUSED and "moved away" in moved.reason
    assert admission.admit(workspace, "prod", revision=newer).wait is Wait.READY


def test_an_asked_revision_never_takes_the_environment_back(
    world: World, workspace: Workspace
) -> None:
    """prod runs C, which dev verified after B: B asked for by name is refused (before its
    approvals are asked), C is nothing to take; once an apply of C failed and left prod at
    B, unverified, B may be applied again (a retry)."""
    b = world.commit(chain())
    workspace.apply("dev")
    c = world.commit(chain(size=4, prod={"variables": {"size": 4}}))
    workspace.apply("dev")
    assert admission.admit(workspace, "prod", revision=b).wait is Wait.APPROVAL
    assert workspace.apply("prod", revision=c).status is RunStatus.SUCCEEDED
    for action in (RequestKind.APPLY, RequestKind.PROMOTE):
        older = admission.admit(workspace, "prod", action=action, revision=b)
        assert older.wait is Wait.REFUSED, older
        assert older.reason == (
            f"prod runs {c[:12]}, which dev verified after {b[:12]}: an environment never "
            "moves backwards (a rollback returns to an older revision)"
        )
        same = admission.admit(workspace, "prod", action=action, revision=c)
        assert (same.wait, same.reason) == (Wait.NOTHING, f"prod runs {c[:12]} already")

    assert workspace.apply("prod", revision=b).status is RunStatus.SUCCEEDED  # a rollback
    world.control(fail={f"{name}:apply": -1 for name in ("net", "dns", "k8s", "app")})
    assert workspace.apply("prod", revision=c).status is RunStatus.FAILED
    again = admission.admit(workspace, "prod", revision=b, record=False)
    assert (again.wait, again.revision) == (Wait.APPROVAL, b)


def test_a_revision_off_the_branch_is_refused_for_every_action(
    world: World, workspace: Workspace
) -> None:
    world.commit(chain())
    git(world.repo, "checkout", "-q", "-b", "side")
    side = world.commit(chain(size=7))
    git(world.repo, "checkout", "-q", "main")
    for action in (RequestKind.PLAN, RequestKind.APPLY, RequestKind.ROLLBACK):
        refused = admission.admit(workspace, "dev", action=action, revision=side)
        assert refused.wait is Wait.REFUSED and "not a commit of the branch" in refused.reason


def test_rollback_is_not_held_by_windows_but_destroy_is_unless_forced(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit(chain())
    workspace.apply("dev")
    world.commit(chain(size=6))
    workspace.apply("dev")
    from tests.runtime.test_promotion_flow import environment

    frozen = environment("dev", variables={"size": 6}, windows=ALWAYS_DENIED)
    world.commit({**chain(size=6), "environments/dev.yaml": frozen})
    assert admission.admit(workspace, "dev").wait is Wait.WINDOW
    assert admission.admit(workspace, "dev", action=RequestKind.DESTROY).wait is Wait.WINDOW
    forced = admission.admit(
        workspace, "dev", action=RequestKind.DESTROY, forced=True, actor="oncall"
    )
    assert forced.wait is Wait.READY and forced.forced
    assert ("promotion.forced", "oncall") in [(e.kind, e.actor) for e in store.list_events("dev")]
    assert admission.admit(workspace, "dev", action=RequestKind.PLAN).wait is Wait.READY
    run, _ = promoting.roll_back(workspace, "dev", to=first)
    assert run.status is RunStatus.SUCCEEDED and run.revision == first


def test_suspension_holds_automatic_work_only_and_is_shown(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(chain())
    suspending.suspend(workspace, "dev", reason="incident 7", actor="oncall")
    held = admission.admit(workspace, "dev", automatic=True, actor="gitopsd")
    assert held.wait is Wait.SUSPENDED and "incident 7" in held.reason
    report = reports.status_report(store, workspace.load().repository, environment="dev")
    waiting = report["environments"][0]["waiting"]
    assert (waiting["kind"], waiting["until"]) == ("suspended", None)  # only a resume ends it
    assert admission.admit(workspace, "dev").wait is Wait.READY  # manual runs still work
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    state = store.get_environment("dev")
    assert state is not None and state.shown_status is EnvironmentStatus.SUSPENDED
    with pytest.raises(SuspensionRefusedError, match="suspended already"):
        suspending.suspend(workspace, "dev", reason="", actor="bob")
    suspending.resume(workspace, "dev", actor="alice")
    assert admission.admit(workspace, "dev", automatic=True).wait is Wait.READY
    events = [(e.kind, e.actor) for e in store.list_events("dev")]
    assert ("environment.suspended", "oncall") in events
    assert ("environment.resumed", "alice") in events
    assert ("request.held", "gitopsd") in events
    with pytest.raises(SuspensionRefusedError, match="not suspended"):
        suspending.resume(workspace, "dev", actor="alice")


def test_an_unknown_environment_is_refused(world: World, workspace: Workspace) -> None:
    world.commit(chain())
    with pytest.raises(RunRefusedError, match="unknown environment 'qa'"):
        admission.admit(workspace, "qa")


def test_asking_admission_exports_no_checkout(world: World, workspace: Workspace) -> None:
    """Deciding is about manifests: the daemon asks every beat for each auto environment,
    and a checkout of the head would be written for revisions nothing runs."""
    world.commit(chain())
    head = workspace.source.head()
    decided = admission.admit(workspace, "prod", record=False)
    assert decided.wait is Wait.NOTHING  # nothing verified upstream yet
    assert (
        admission.admit(workspace, "dev", action=RequestKind.PLAN, record=False).wait is Wait.READY
    )
    assert not (workspace.data_dir / "checkouts" / head).exists()


def test_what_was_tried_is_the_last_apply_that_brought_a_revision_in(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """dev's head failed: automatic work does not take it again, also after an apply of
    some components or a drift remediation since (neither tries the head again); a person
    does, and a new commit is taken."""
    head = world.commit(chain())
    world.control(fail={"app:apply": -1})
    assert workspace.apply("dev").status is RunStatus.FAILED
    world.control()
    assert workspace.apply("dev", components=["dns"]).status is RunStatus.SUCCEEDED
    now = workspace.clock.now()
    store.save_run(Run(id="remedied", environment="dev", revision=head, action=RunAction.APPLY,
                       status=RunStatus.SUCCEEDED, trigger=REMEDIATION_TRIGGER,
                       created_at=now, started_at=now, finished_at=now))  # fmt: skip
    automatic = admission.admit(workspace, "dev", automatic=True)
    assert automatic.wait is Wait.NOTHING and "ended failed" in automatic.reason
    assert admission.admit(workspace, "dev").wait is Wait.READY  # a person's apply
    newer = world.commit(chain(size=4))
    assert admission.admit(workspace, "dev", automatic=True).revision == newer
