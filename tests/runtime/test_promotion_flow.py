"""Promotion through the run engine: dev verifies, prod follows after two approvals, never
the author's, never an outsider's, never a revision dev did not verify; windows and --force."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitopsd.engine.approving import Person
from gitopsd.engine.ports import StateStore
from gitopsd.errors import ApprovalRefusedError, ApproverRefusedError, BusyError, ConflictError
from gitopsd.model.state import EnvironmentStatus, RunStatus
from gitopsd.runtime.promotion import admission, promoting, suspending
from gitopsd.runtime.promotion.promoting import Wait
from gitopsd.runtime.records import reports
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

AUTHOR = Person("Test Author", "author@example.com")  # who tests.gitrepos commits as


def environment(name: str, **spec: Any) -> str:
    spec = {"variables": {"size": 3}, **spec}
    return json.dumps(
        {
            "apiVersion": "gitopsd.io/v1",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def chain(*, size: int = 3, prod: dict[str, Any] | None = None) -> dict[str, str]:
    prod_spec = {
        "promotion": {"from": "dev"},
        "approvals": {"required": 2, "approvers": ["alice", "bob", "carol", "Test Author"],
                      "forbid_author": True},
        **(prod or {}),
    }  # fmt: skip
    return layered(
        **{
            "environments/dev.yaml": environment("dev", variables={"size": size}),
            "environments/prod.yaml": environment("prod", **prod_spec),
        }
    )


def test_a_verified_revision_reaches_prod_after_two_distinct_approvals(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = world.commit(chain())
    nothing, _ = promoting.promote(workspace, "prod")
    assert nothing.wait is Wait.NOTHING and "verified no revision" in nothing.reason
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED

    waiting, run = promoting.promote(workspace, "prod")
    assert (waiting.wait, waiting.revision, run) == (Wait.APPROVAL, sha, None)
    state = store.get_environment("prod")
    assert state is not None and state.status is EnvironmentStatus.WAITING_APPROVAL

    _, missing = promoting.approve(workspace, "prod", revision=None, approver=Person("alice"))
    assert missing == 1
    _, missing = promoting.approve(workspace, "prod", revision=None, approver=Person("bob"))
    assert missing == 0
    with pytest.raises(ApprovalRefusedError, match="prod has every approval it needs") as full:
        promoting.approve(workspace, "prod", revision=None, approver=Person("carol"))
    assert isinstance(full.value, ConflictError)
    done, run = promoting.promote(workspace, "prod")
    assert done.wait is Wait.READY and run is not None and run.status is RunStatus.SUCCEEDED
    assert (run.revision, run.trigger) == (sha, "promotion")
    prod = store.get_environment("prod")
    assert prod is not None and (prod.revision, prod.status) == (sha, EnvironmentStatus.VERIFIED)


@pytest.mark.parametrize(
    ("approver", "reason"),
    [
        (Person("mallory"), "mallory is not an approver of this environment"),
        (Person("Test Author"), "Test Author wrote this revision"),
        (Person("carol", "AUTHOR@example.com"), "carol wrote this revision"),
    ],
)
def test_outsiders_and_the_author_are_refused(
    world: World, workspace: Workspace, approver: Person, reason: str
) -> None:
    world.commit(chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    with pytest.raises(ApproverRefusedError, match=reason):
        promoting.approve(workspace, "prod", revision=None, approver=approver)


def test_a_duplicate_approval_and_an_unverified_revision_are_conflicts(
    world: World, workspace: Workspace
) -> None:
    first = world.commit(chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    promoting.approve(workspace, "prod", revision=None, approver=Person("alice"))
    with pytest.raises(ApprovalRefusedError, match="alice has approved this revision already"):
        promoting.approve(workspace, "prod", revision=first, approver=Person("alice"))
    unverified = world.commit(chain(size=9))
    with pytest.raises(ApprovalRefusedError, match="its upstream never verified it") as refused:
        promoting.approve(workspace, "prod", revision=unverified, approver=Person("bob"))
    assert isinstance(refused.value, ConflictError)


def test_a_newer_verified_revision_supersedes_the_pending_approvals(
    world: World, workspace: Workspace
) -> None:
    first = world.commit(chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    promoting.approve(workspace, "prod", revision=None, approver=Person("alice"))
    newer = world.commit(chain(size=4))
    workspace.apply("dev")
    pending, _ = promoting.promote(workspace, "prod")
    assert pending.revision == newer and pending.wait is Wait.APPROVAL
    assert pending.approvals == []  # approvals of the older revision do not carry over
    assert pending.superseded == first
    superseded = [e for e in workspace.store.list_events("prod") if e.kind == "approval.superseded"]
    assert [e.data["revision"] for e in superseded] == [first]
    pending_now = promoting.pending_approval(workspace, "prod")
    assert pending_now is not None and pending_now.revision == newer


def test_a_failed_gate_upstream_never_flows_down(world: World, workspace: Workspace) -> None:
    dev = environment(
        "dev", gates=[{"name": "smoke", "command": [sys.executable, "driver.py", "gate"]}]
    )
    world.commit({**chain(), "environments/dev.yaml": dev})
    world.control(fail={"smoke:gate": -1})
    assert workspace.apply("dev").status is RunStatus.FAILED
    decision, _ = promoting.promote(workspace, "prod")
    assert decision.wait is Wait.NOTHING


def test_a_window_holds_a_promotion_and_force_overrides_it_on_the_record(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    always_denied = {"windows": [{"kind": "deny", "schedule": "* * * * *", "duration": "1h"}],
                     "approvals": {"required": 0}}  # fmt: skip
    sha = world.commit(chain(prod=always_denied))
    workspace.apply("dev")
    held, _ = promoting.promote(workspace, "prod")
    assert held.wait is Wait.WINDOW and held.look_again_at is not None
    state = store.get_environment("prod")
    assert state is not None and state.status is EnvironmentStatus.WAITING_WINDOW
    forced, run = promoting.promote(workspace, "prod", forced=True, actor="oncall")
    assert run is not None and run.status is RunStatus.SUCCEEDED and run.forced
    kinds = [(e.kind, e.actor) for e in store.list_events("prod")]
    assert ("promotion.forced", "oncall") in kinds
    assert forced.revision == sha


class ShiftedClock:
    """The system clock, moved forward by `offset` seconds: soak without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


def test_prod_waits_for_the_soak_then_asks_for_approvals(
    world: World, workspace: Workspace
) -> None:
    clock = ShiftedClock()
    workspace.clock = clock
    sha = world.commit(chain(prod={"promotion": {"from": "dev", "soak": "10m"}}))
    workspace.apply("dev")
    soaking, run = promoting.promote(workspace, "prod")
    assert soaking.wait is Wait.SOAK and run is None
    assert soaking.look_again_at is not None and "soaks until" in soaking.reason
    clock.offset = 9 * 60
    assert promoting.promote(workspace, "prod")[0].wait is Wait.SOAK
    clock.offset = 10 * 60 + 1
    soaked, _ = promoting.promote(workspace, "prod")
    assert (soaked.wait, soaked.revision) == (Wait.APPROVAL, sha)


def test_a_commit_that_drops_prods_rules_is_held_to_the_rules_prod_runs(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """prod's rules are those of the revision it is at: a commit that removes its
    `promotion` and `approvals` is not applied to prod at once under the rules it wrote; it
    goes down the chain and waits for two approvals like any other, and its rules hold in
    prod once it is applied there."""
    first = world.commit(chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    for name in ("alice", "bob"):
        promoting.approve(workspace, "prod", revision=None, approver=Person(name))
    assert promoting.promote(workspace, "prod")[1] is not None
    open_prod = {**chain(), "environments/prod.yaml": environment("prod")}
    loosened = world.commit(open_prod, message="prod: no promotion, no approvals")

    asked = admission.admit(workspace, "prod", record=False)
    assert (asked.wait, asked.revision) != (Wait.READY, loosened)  # dev never verified it
    head = workspace.manifests()
    shown = reports.status_report(store, head, manifests_at=workspace.valid_manifests)
    assert [e["upstream"] for e in shown["environments"]] == [None, "dev"]  # what admission reads
    workspace.apply("dev")
    waiting, run = promoting.promote(workspace, "prod")
    assert (waiting.wait, waiting.revision, run) == (Wait.APPROVAL, loosened, None)
    for name in ("alice", "bob"):
        promoting.approve(workspace, "prod", revision=None, approver=Person(name))
    _, run = promoting.promote(workspace, "prod")
    assert run is not None and run.revision == loosened
    prod = store.get_environment("prod")
    assert prod is not None and (prod.revision, prod.previous_revision) == (loosened, first)

    after = world.commit({**open_prod, "x.txt": "next"}, message="a change")
    now = admission.admit(workspace, "prod", record=False)
    assert (now.wait, now.revision) == (Wait.READY, after)  # prod follows the head now


def test_an_apply_of_the_components_that_work_does_not_verify_what_another_failed(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """dns fails in dev (the run stops: app, perhaps k8s, not applied); an apply of net alone
    succeeds, but leaves dev failed at that revision, with an event naming what is not
    applied, and prod never takes it. Once the rest is applied too, dev is verified."""
    sha = world.commit(chain())
    world.control(fail={"dns:apply": -1})
    assert workspace.apply("dev").status is RunStatus.FAILED
    partial = workspace.apply("dev", components=["net"])
    assert partial.status is RunStatus.SUCCEEDED
    dev = store.get_environment("dev")
    assert dev is not None and (dev.revision, dev.status) == (sha, EnvironmentStatus.FAILED)
    said = [e for e in store.list_events("dev") if e.kind == "environment.incomplete"]
    assert len(said) == 1 and said[0].message.startswith(f"dev is not verified at {sha[:12]}: ")
    behind = said[0].data["components"]  # k8s too if the stop came before it started
    assert {"dns", "app"} <= set(behind) and "net" not in behind
    assert promoting.promote(workspace, "prod")[0].wait is Wait.NOTHING

    world.control(fail={})
    rest = workspace.apply("dev", components=["dns", "k8s", "app"])
    assert rest.status is RunStatus.SUCCEEDED
    dev = store.get_environment("dev")
    assert dev is not None and (dev.revision, dev.status) == (sha, EnvironmentStatus.VERIFIED)
    assert promoting.promote(workspace, "prod")[0].wait is Wait.APPROVAL


def test_an_approval_given_before_prod_narrowed_its_approvers_no_longer_counts(
    world: World, workspace: Workspace
) -> None:
    """alice approves S3 ahead (prod's list has her); prod then applies S2, which takes her
    off `approvers`: S3 still needs two approvals from the people the list names now."""
    world.commit(chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    for name in ("alice", "bob"):
        promoting.approve(workspace, "prod", revision=None, approver=Person(name))
    assert promoting.promote(workspace, "prod")[1] is not None
    narrowed = chain(prod={"approvals": {"required": 2, "approvers": ["bob", "carol"]}})
    second = world.commit(narrowed, message="prod: bob and carol approve")
    workspace.apply("dev")
    third = world.commit({**narrowed, "x.txt": "next"}, message="a change")
    workspace.apply("dev")
    promoting.approve(workspace, "prod", revision=third, approver=Person("alice"))

    promoting.promote(workspace, "prod", revision=second)
    for name in ("bob", "carol"):
        promoting.approve(workspace, "prod", revision=second, approver=Person(name))
    assert promoting.promote(workspace, "prod", revision=second)[1] is not None

    waiting, run = promoting.promote(workspace, "prod")
    assert (waiting.wait, waiting.revision, run) == (Wait.APPROVAL, third, None)
    assert waiting.reason.endswith("needs 2 more approvals")
    promoting.approve(workspace, "prod", revision=None, approver=Person("bob"))
    assert promoting.promote(workspace, "prod")[0].wait is Wait.APPROVAL


def auto_chain(*, size: int = 3, auto: bool = True) -> dict[str, str]:
    return chain(size=size, prod={"promotion": {"from": "dev", "auto": auto}, "approvals": {}})


def prod_took_two(world: World, workspace: Workspace) -> tuple[str, str]:
    """S1 and S2, each verified in dev and taken by prod's automatic promotion."""
    first = world.commit(auto_chain())
    workspace.apply("dev")
    assert promoting.promote(workspace, "prod", automatic=True)[1] is not None
    second = world.commit(auto_chain(size=6))
    workspace.apply("dev")
    assert promoting.promote(workspace, "prod", automatic=True)[1] is not None
    return first, second


def test_a_rollback_of_an_automatically_promoted_prod_is_not_undone_by_its_next_promotion(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """prod takes S2 by itself and is rolled back to S1: the rollback suspends prod's
    automatic work, so the automatic promotion does not take S2 again at once; a person
    still may, and a resume lets the automatic promotion go on."""
    first, second = prod_took_two(world, workspace)

    run, suspended = promoting.roll_back(workspace, "prod", to=first, actor="oncall")
    assert run.status is RunStatus.SUCCEEDED
    assert suspended is not None and suspended.actor == "oncall"
    assert suspended.reason.startswith(f"rolled back from {second[:12]} to {first[:12]}")
    assert suspended.run_id == run.id
    again, rerun = promoting.promote(workspace, "prod", automatic=True, actor="gitopsd")
    assert (again.wait, rerun) == (Wait.SUSPENDED, None)
    prod = store.get_environment("prod")
    assert prod is not None and prod.revision == first
    kinds = [(e.kind, e.actor) for e in store.list_events("prod")]
    assert ("environment.suspended", "oncall") in kinds

    suspending.resume(workspace, "prod", actor="oncall")
    assert promoting.promote(workspace, "prod", automatic=True)[0].revision == second


def test_a_rollback_of_a_branch_following_dev_holds_its_next_commit(
    world: World, workspace: Workspace
) -> None:
    first = world.commit(auto_chain())
    workspace.apply("dev")
    world.commit(auto_chain(size=6))
    workspace.apply("dev")
    _, suspended = promoting.roll_back(workspace, "dev", to=first)
    assert suspended is not None and "its next commit would undo the rollback" in suspended.reason
    world.commit(auto_chain(size=7))
    assert admission.admit(workspace, "dev", automatic=True).wait is Wait.SUSPENDED


def test_a_rollback_of_a_suspended_environment_restates_its_suspension(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """alice suspended prod for a freeze; oncall rolls it back. Before, the rollback left
    alice's suspension as it was and said nothing: whoever resumed after the freeze let
    the automatic promotion undo the rollback unawares. Now the suspension says the
    rollback first, and the earlier reason after it."""
    first, second = prod_took_two(world, workspace)
    suspending.suspend(workspace, "prod", reason="freeze", actor="alice")

    run, suspended = promoting.roll_back(workspace, "prod", to=first, actor="oncall")
    assert run.status is RunStatus.SUCCEEDED
    assert suspended is not None and (suspended.actor, suspended.run_id) == ("oncall", run.id)
    assert suspended.reason.startswith(f"rolled back from {second[:12]} to {first[:12]}")
    assert suspended.reason.endswith("(suspended before by alice: freeze)")
    prod = store.get_environment("prod")
    assert prod is not None and prod.suspension == suspended

    # a second rollback replaces the first one's reason and keeps alice's, not nested
    again, restated = promoting.roll_back(workspace, "prod", to=second, actor="oncall")
    assert restated is not None and restated.run_id == again.id
    assert restated.reason == (
        f"rolled back from {first[:12]} to {second[:12]}: its automatic promotion would undo"
        " the rollback; resume once a fix is ready (suspended before by alice: freeze)"
    )


def test_a_rollback_of_a_prod_nothing_promotes_automatically_suspends_nothing(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit(auto_chain(auto=False))
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    world.commit(auto_chain(size=6, auto=False))
    workspace.apply("dev")
    promoting.promote(workspace, "prod")
    run, suspended = promoting.roll_back(workspace, "prod", to=first)
    assert (run.status, suspended) == (RunStatus.SUCCEEDED, None)
    prod = store.get_environment("prod")
    assert prod is not None and prod.suspension is None


def test_a_rollback_that_finds_the_environment_busy_suspends_nothing(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """Another process runs dev: the rollback is refused as busy, and leaves no suspension
    (nor a rollback.requested) behind it, for a rollback that never happened; once dev is
    free, the rollback suspends and runs."""
    first = world.commit(auto_chain())
    workspace.apply("dev")
    world.commit(auto_chain(size=6))
    workspace.apply("dev")
    assert store.acquire_lease("dev", "elsewhere:1:x", now=workspace.clock.now(), ttl=60)
    with pytest.raises(BusyError, match="dev is busy"):
        promoting.roll_back(workspace, "dev", to=first, actor="oncall")
    dev = store.get_environment("dev")
    assert dev is not None and dev.suspension is None and dev.revision != first
    kinds = {e.kind for e in store.list_events("dev")}
    assert not kinds & {"environment.suspended", "rollback.requested"}

    store.release_lease("dev", "elsewhere:1:x")
    run, suspended = promoting.roll_back(workspace, "dev", to=first, actor="oncall")
    assert run.status is RunStatus.SUCCEEDED and suspended is not None


def test_a_rollback_to_the_revision_the_environment_runs_suspends_nothing(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """Rolling prod back to what it runs re-applies it (a repair) and takes it back from
    nothing: its automatic promotion undoes nothing, so nothing is suspended ("rolled back
    from S to S")."""
    world.commit(auto_chain())
    workspace.apply("dev")
    promoting.promote(workspace, "prod", automatic=True)
    second = world.commit(auto_chain(size=6))
    workspace.apply("dev")
    promoting.promote(workspace, "prod", automatic=True)
    run, suspended = promoting.roll_back(workspace, "prod", to=second, actor="oncall")
    assert (run.status, run.revision, suspended) == (RunStatus.SUCCEEDED, second, None)
    prod = store.get_environment("prod")
    assert prod is not None and prod.suspension is None


def test_an_approval_that_stopped_counting_may_be_given_again_with_a_token(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """bob approved prod's pending revision by name; prod then turned `authenticated` on,
    so that approval proves nothing and no longer counts. bob may approve again with his
    API token, and that one counts (it was refused 'approved already': the revision could
    never have bob's approval). A second approval of his that counts is still a conflict."""
    approvals = {"required": 1, "approvers": ["bob"]}
    world.commit(chain(prod={"approvals": approvals}))
    workspace.apply("dev")
    assert promoting.promote(workspace, "prod")[0].wait is Wait.APPROVAL
    promoting.approve(workspace, "prod", revision=None, approver=Person("bob"))
    world.commit(chain(prod={"approvals": {**approvals, "authenticated": True}}))
    waiting, _ = promoting.promote(workspace, "prod")
    assert waiting.wait is Wait.APPROVAL and waiting.reason.endswith("needs 1 more approval")

    record, missing = promoting.approve(
        workspace, "prod", revision=waiting.revision, approver=Person("bob"), token="bob-token"
    )
    assert missing == 0
    kept = store.list_approvals("prod", record.revision)
    assert [(a.approver, a.authenticated, a.token) for a in kept] == [("bob", True, "bob-token")]
    with pytest.raises(ConflictError, match="bob has approved this revision already"):
        promoting.approve(
            workspace, "prod", revision=waiting.revision, approver=Person("bob"), token="bob-2"
        )
    assert promoting.promote(workspace, "prod")[1] is not None


def test_a_rollback_of_dev_does_not_take_an_automatically_promoted_prod_back(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """prod (auto) runs S2, verified by dev after S1. oncall rolls dev back to S1 (dev's own
    incident): prod's automatic promotion took S1 as dev's newest hold, moving prod back
    though nobody asked for a rollback of prod. Neither does a person's promotion of S1."""
    first, second = prod_took_two(world, workspace)
    promoting.roll_back(workspace, "dev", to=first, actor="oncall")

    nothing, run = promoting.promote(workspace, "prod", automatic=True)
    assert (nothing.wait, run) == (Wait.NOTHING, None)
    asked = admission.admit(workspace, "prod", revision=first, record=False)
    assert asked.wait is Wait.REFUSED and "never moves backwards" in asked.reason
    prod = store.get_environment("prod")
    assert prod is not None and prod.revision == second
