"""`approvals.authenticated: true` (SPEC 2.2, 9): only approvals made with an API token count.
A name declared on the command line is refused with the reason, and the history says of each
approval whether it was authenticated (which token) or self-declared."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.engine.approving import Person
from gitopsd.engine.ports import StateStore
from gitopsd.errors import ApprovalRefusedError
from gitopsd.model.state import RunStatus
from gitopsd.runtime.promotion import promoting
from gitopsd.runtime.promotion.promoting import Wait
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.test_promotion_flow import chain
from tests.runtime.world import World

AUTHENTICATED: dict[str, Any] = {"approvals": {"required": 2, "authenticated": True}}


def recorded(store: StateStore, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.actor, e.data) for e in reversed(store.list_events("prod")) if e.kind == kind]


def waiting_prod(world: World, workspace: Workspace, prod: dict[str, Any]) -> str:
    sha = world.commit(chain(prod=prod))
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    waiting, _ = promoting.promote(workspace, "prod")
    assert waiting.wait is Wait.APPROVAL
    return sha


def test_a_self_declared_approval_is_refused_with_the_reason_and_recorded(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = waiting_prod(world, workspace, AUTHENTICATED)
    with pytest.raises(ApprovalRefusedError, match="takes only authenticated approvals"):
        promoting.approve(workspace, "prod", revision=None, approver=Person("alice"))
    assert store.list_approvals("prod", sha) == []
    ((actor, data),) = recorded(store, "approval.refused")
    assert actor == "alice" and data["revision"] == sha


def test_approvals_with_a_token_count_and_say_so_in_the_history(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = waiting_prod(world, workspace, AUTHENTICATED)
    alice = Person("alice", "alice@example.com")
    record, missing = promoting.approve(
        workspace, "prod", revision=None, approver=alice, token="alice"
    )
    assert (record.authenticated, record.token, missing) == (True, "alice", 1)
    promoting.approve(workspace, "prod", revision=None, approver=Person("bob"), token="bob-ci")
    assert [(a.approver, a.authenticated, a.token) for a in store.list_approvals("prod", sha)] == [
        ("alice", True, "alice"),
        ("bob", True, "bob-ci"),
    ]
    events = recorded(store, "approval.recorded")
    assert [(actor, data["authenticated"], data["token"]) for actor, data in events] == [
        ("alice", True, "alice"),
        ("bob", True, "bob-ci"),
    ]
    done, run = promoting.promote(workspace, "prod")
    assert done.wait is Wait.READY and run is not None and run.status is RunStatus.SUCCEEDED


def test_without_the_requirement_a_declared_name_is_recorded_as_self_declared(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    waiting_prod(world, workspace, {"approvals": {"required": 1}})
    record, missing = promoting.approve(workspace, "prod", revision=None, approver=Person("carol"))
    assert (record.authenticated, record.token, missing) == (False, None, 0)
    ((actor, data),) = recorded(store, "approval.recorded")
    assert (actor, data["authenticated"], data["token"]) == ("carol", False, None)
    (event,) = [e for e in store.list_events("prod") if e.kind == "approval.recorded"]
    assert "self-declared" in event.message


def test_self_declared_approvals_given_before_the_requirement_no_longer_count(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = waiting_prod(world, workspace, {"approvals": {"required": 2}})
    promoting.approve(workspace, "prod", revision=None, approver=Person("alice"))
    promoting.approve(workspace, "prod", revision=None, approver=Person("bob"))
    # the manifest now requires tokens, at the same revision's upstream state
    world.commit(chain(prod=AUTHENTICATED))
    held, run = promoting.promote(workspace, "prod", revision=sha)
    assert (held.wait, run) == (Wait.APPROVAL, None)
    assert "needs 2 more approvals" in held.reason
