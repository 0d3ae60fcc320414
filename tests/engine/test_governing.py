"""The rules that govern an environment: those it runs, made stricter by the head only."""

from __future__ import annotations

from typing import Any

from gitopsd.engine.governing import stricter
from gitopsd.model.manifests import EnvironmentSpec

FREEZE = {"kind": "deny", "schedule": "0 18 * * 5", "duration": "62h"}
OFFICE = {"kind": "allow", "schedule": "0 9 * * 1-5", "duration": "8h"}
NIGHTS = {"kind": "allow", "schedule": "0 22 * * *", "duration": "2h"}


def spec(**fields: Any) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate(fields)


def test_a_head_that_drops_the_rules_is_held_to_the_ones_it_runs() -> None:
    running = spec(
        promotion={"from": "staging", "soak": "1h"},
        approvals={"required": 2, "approvers": ["alice", "bob"], "forbid_author": True},
        windows=[FREEZE, OFFICE],
        parallelism=4,
    )
    held = stricter(running, spec(parallelism=8))
    assert (held.promotion.from_, held.promotion.soak) == ("staging", 3600.0)
    assert held.approvals == running.approvals
    assert held.windows == running.windows
    assert held.parallelism == 8  # what is not a rule is the head's


def test_a_head_that_tightens_the_rules_holds_at_once() -> None:
    running = spec(approvals={"required": 1}, windows=[OFFICE])
    head = spec(
        promotion={"from": "staging", "soak": "30m"},
        approvals={"required": 3, "approvers": ["carol"], "authenticated": True},
        windows=[FREEZE, NIGHTS],
    )
    held = stricter(running, head)
    assert (held.promotion.from_, held.promotion.soak) == ("staging", 1800.0)
    assert (held.approvals.required, held.approvals.approvers) == (3, ["carol"])
    assert held.approvals.authenticated
    kinds = [(w.kind, w.schedule) for w in held.windows]
    assert kinds == [("deny", "0 18 * * 5"), ("allow", "0 9 * * 1-5")]  # its own allow windows


def test_who_may_approve_and_where_it_comes_from_change_once_applied() -> None:
    running = spec(promotion={"from": "staging"}, approvals={"required": 2, "approvers": ["a"]})
    head = spec(promotion={"from": "dev"}, approvals={"required": 2, "approvers": ["mallory"]})
    held = stricter(running, head)
    assert (held.promotion.from_, held.approvals.approvers) == ("staging", ["a"])
