"""The one admission rule (engine.admitting), pure: what each action may do, with facts given."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gitopsd.engine.admitting import Ask, Facts, FailedApply, Wait, decide
from gitopsd.engine.approving import Approval
from gitopsd.engine.promotion import Hold
from gitopsd.engine.signing import Seal, Signature
from gitopsd.model.manifests import Approvals, Window
from gitopsd.model.state import RequestKind

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HEAD, OLD, FAILED, OFF = "h" * 40, "o" * 40, "f" * 40, "x" * 40
DENY = Window(kind="deny", schedule="0 11 * * *", duration=7200)  # 11:00-13:00 UTC


def facts(**changes: object) -> Facts:
    def none(_: str) -> Sequence[Approval]:
        return []

    made = Facts(
        now=NOW,
        head=HEAD,
        upstream="staging",
        upstream_holds=[Hold(OLD, NOW - timedelta(days=2), NOW - timedelta(days=1)),
                        Hold(HEAD, NOW - timedelta(hours=3))],
        own_holds=[Hold(OLD, NOW - timedelta(days=1))],
        current=OLD,
        soak=3600,
        approvals=Approvals(required=0),
        windows=[],
        given=none,
        on_branch=lambda sha: sha != OFF,
    )  # fmt: skip
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def test_a_promoted_environment_takes_only_what_its_upstream_verified_and_soaked() -> None:
    assert decide(Ask("prod", RequestKind.APPLY), facts()).revision == HEAD
    refused = decide(Ask("prod", RequestKind.APPLY, FAILED), facts())
    assert (refused.wait, refused.reason) == (Wait.REFUSED, f"staging never verified {FAILED[:12]}")
    soaking = decide(Ask("prod", RequestKind.APPLY, HEAD), facts(soak=4 * 3600))
    assert soaking.wait is Wait.SOAK and soaking.look_again_at == NOW + timedelta(hours=1)
    nothing = decide(Ask("prod", RequestKind.APPLY), facts(upstream_holds=[]))
    assert nothing.wait is Wait.NOTHING


def test_approvals_then_windows_hold_a_promotion_and_force_overrides_only_the_window() -> None:
    needs = facts(approvals=Approvals(required=1))
    assert decide(Ask("prod", RequestKind.PROMOTE, forced=True), needs).wait is Wait.APPROVAL
    denied = facts(windows=[DENY])
    assert decide(Ask("prod", RequestKind.PROMOTE), denied).wait is Wait.WINDOW
    forced = decide(Ask("prod", RequestKind.PROMOTE, forced=True), denied)
    assert (forced.wait, forced.forced) == (Wait.READY, True)


@pytest.mark.parametrize(
    "action",
    [
        RequestKind.PLAN,
        RequestKind.APPLY,
        RequestKind.DESTROY,
        RequestKind.ROLLBACK,
        RequestKind.REMEDIATE,
    ],
)
def test_a_revision_off_the_branch_is_refused(action: RequestKind) -> None:
    decided = decide(Ask("prod", action, OFF), facts())
    assert decided.wait is Wait.REFUSED and "not a commit of the branch" in decided.reason


def test_suspension_holds_automatic_work_only() -> None:
    suspended = facts(suspended="incident", upstream=None)
    assert (
        decide(Ask("dev", RequestKind.APPLY, HEAD, automatic=True), suspended).wait
        is Wait.SUSPENDED
    )
    assert (
        decide(Ask("dev", RequestKind.REMEDIATE, automatic=True), suspended).wait is Wait.SUSPENDED
    )
    assert decide(Ask("dev", RequestKind.APPLY, HEAD), suspended).wait is Wait.READY


def test_plan_is_never_held_rollback_only_to_its_own_holds_destroy_by_windows() -> None:
    held = facts(windows=[DENY], approvals=Approvals(required=2))
    assert decide(Ask("prod", RequestKind.PLAN, FAILED), held).wait is Wait.READY
    assert decide(Ask("prod", RequestKind.ROLLBACK, OLD), held).wait is Wait.READY
    assert decide(Ask("prod", RequestKind.ROLLBACK, HEAD), held).wait is Wait.REFUSED
    held_destroy = decide(Ask("prod", RequestKind.DESTROY), held)
    assert (held_destroy.wait, held_destroy.revision) == (Wait.WINDOW, None)  # it brings none
    assert decide(Ask("prod", RequestKind.REMEDIATE), held).revision == OLD  # what it runs
    assert decide(
        Ask("prod", RequestKind.DESTROY), facts(approvals=Approvals(required=2))
    ).wait is (Wait.READY)
    assert decide(Ask("prod", RequestKind.REMEDIATE), held).wait is Wait.WINDOW


def test_a_branch_environment_takes_the_head_or_the_revision_held_by_windows() -> None:
    branch = facts(upstream=None)
    assert decide(Ask("dev", RequestKind.APPLY), branch).revision == HEAD
    assert decide(Ask("dev", RequestKind.APPLY, OLD), branch).revision == OLD
    assert (
        decide(Ask("dev", RequestKind.APPLY), facts(upstream=None, windows=[DENY])).wait
        is Wait.WINDOW
    )
    assert decide(Ask("dev", RequestKind.PROMOTE), branch).wait is Wait.NOTHING


def test_a_revision_no_trusted_signer_signed_is_blocked_on_every_path_that_brings_it_in() -> None:
    def verify(revision: str) -> Signature:
        return Signature(Seal.TRUSTED if revision == OLD else Seal.UNSIGNED)

    signed = facts(verify=verify, approvals=Approvals(required=2), windows=[DENY])
    asks = [
        Ask("prod", RequestKind.APPLY),  # a promotion: blocked before approvals or windows
        Ask("prod", RequestKind.PROMOTE, HEAD),
        Ask("prod", RequestKind.REMEDIATE, HEAD),
        Ask("prod", RequestKind.PLAN),  # plans the head: its driver commands would run
    ]
    for ask in asks:
        decided = decide(ask, signed)
        assert (decided.wait, decided.revision) == (Wait.BLOCKED, HEAD), ask
        assert decided.signature == Signature(Seal.UNSIGNED)
        assert f"{HEAD[:12]} is not signed; prod requires commits signed" in decided.reason
    rollback = decide(Ask("prod", RequestKind.ROLLBACK, OLD), signed)
    assert (rollback.wait, rollback.revision) == (Wait.READY, OLD)  # OLD is signed
    assert decide(Ask("prod", RequestKind.PLAN, OLD), signed).wait is Wait.READY
    assert decide(Ask("prod", RequestKind.DESTROY), signed).wait is Wait.WINDOW  # brings none
    unrequired = decide(Ask("prod", RequestKind.APPLY), facts(approvals=Approvals(required=0)))
    assert unrequired.wait is Wait.READY


def test_a_refusal_comes_before_the_signature() -> None:
    def verify(revision: str) -> Signature:
        return Signature(Seal.UNKNOWN_KEY, key="SHA256:abc", signer="mallory")

    checked = facts(verify=verify)
    assert decide(Ask("prod", RequestKind.ROLLBACK, HEAD), checked).wait is Wait.REFUSED
    blocked = decide(Ask("prod", RequestKind.ROLLBACK, OLD), checked)
    assert blocked.wait is Wait.BLOCKED
    assert "signed by a key the trust file does not list (key SHA256:abc, mallory)" in (
        blocked.reason
    )


def test_automatic_work_does_not_take_again_a_revision_that_failed_here() -> None:
    """A revision whose last apply here failed or was cancelled: automatic work (a commit, an
    auto promotion) finds nothing to take; a person's ask, and a newer revision, go on."""
    failed = facts(last_failed=FailedApply(HEAD, "run-1", "failed"))
    auto = decide(Ask("prod", RequestKind.PROMOTE, automatic=True), failed)
    assert auto.wait is Wait.NOTHING
    assert auto.reason == (
        f"the last apply of {HEAD[:12]} in prod (run-1) ended failed: not tried again on its"
        " own; a new revision, or a person, tries again"
    )
    assert decide(Ask("prod", RequestKind.PROMOTE), failed).wait is Wait.READY
    older = facts(last_failed=FailedApply(OLD, "run-0", "cancelled"))
    assert decide(Ask("prod", RequestKind.PROMOTE, automatic=True), older).wait is Wait.READY
    head = facts(upstream=None, last_failed=FailedApply(HEAD, "run-1", "cancelled"))
    assert decide(Ask("dev", RequestKind.APPLY, automatic=True), head).wait is Wait.NOTHING
