"""Which steps of a run are ready, blocked or left, and when the run is over (no threads)."""

from __future__ import annotations

from gitopsd.engine.stepping import (
    Node,
    Part,
    Schedule,
    StepKey,
    apply_graph,
    destroy_graph,
    plan_graph,
    progress,
    rollback_graph,
)
from gitopsd.model.state import StepAction, StepStatus

APPLY, HEALTH, DESTROY, GATE = (
    StepAction.APPLY,
    StepAction.HEALTH,
    StepAction.DESTROY,
    StepAction.GATE,
)
OK, FAILED, RUNNING = StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.RUNNING


def chain(*, on_failure: str = "rollback", health: bool = False) -> list[Node]:
    return apply_graph(
        [
            Part("net", (), on_failure, health),  # type: ignore[arg-type]
            Part("k8s", ("net",), on_failure, health),  # type: ignore[arg-type]
            Part("app", ("k8s",), on_failure, health),  # type: ignore[arg-type]
        ]
    )


def test_only_steps_whose_needs_succeeded_are_ready() -> None:
    nodes = chain()
    assert progress(nodes, {}).ready == [("net", APPLY)]
    assert progress(nodes, {("net", APPLY): RUNNING}).ready == []
    assert progress(nodes, {("net", APPLY): StepStatus.SKIPPED}).ready == [("k8s", APPLY)]


def test_independent_steps_are_ready_together() -> None:
    nodes = apply_graph([Part("a"), Part("b"), Part("c", ("a", "b"))])
    assert progress(nodes, {}).ready == [("a", APPLY), ("b", APPLY)]
    assert progress(nodes, {("a", APPLY): OK}).ready == [("b", APPLY)]


def test_a_health_step_follows_its_apply_and_dependents_wait_for_it() -> None:
    nodes = chain(health=True)
    after_apply = progress(nodes, {("net", APPLY): OK})
    assert after_apply.ready == [("net", HEALTH)]
    assert progress(nodes, {("net", APPLY): OK, ("net", HEALTH): OK}).ready == [("k8s", APPLY)]


def test_an_applied_component_whose_health_never_finished_is_not_done() -> None:
    """A crash during health leaves it running in the store; the resumed walk treats every
    step not succeeded as pending, so the health step is ready again."""
    nodes = chain(health=True)
    resumed = progress(nodes, {("net", APPLY): OK})
    assert resumed.ready == [("net", HEALTH)] and not resumed.done


def test_a_failure_with_stop_halts_and_blocks_its_dependents() -> None:
    nodes = apply_graph([Part("a", (), "stop"), Part("b", (), "stop"), Part("c", ("a",), "stop")])
    now = progress(nodes, {("a", APPLY): FAILED})
    assert now.ready == [] and now.blocked == [("c", APPLY)] and now.unstarted == [("b", APPLY)]
    assert now.done and not now.succeeded and not now.wants_rollback


def test_a_failure_with_continue_runs_everything_that_does_not_depend_on_it() -> None:
    nodes = apply_graph(
        [Part("a", (), "continue"), Part("b", (), "continue"), Part("c", ("a",), "continue")]
    )
    now = progress(nodes, {("a", APPLY): FAILED})
    assert now.ready == [("b", APPLY)] and now.blocked == [("c", APPLY)]
    final = progress(nodes, {("a", APPLY): FAILED, ("b", APPLY): OK})
    assert final.done and final.failed == [("a", APPLY)] and not final.wants_rollback


def test_a_failure_with_rollback_asks_for_one() -> None:
    now = progress(chain(), {("net", APPLY): OK, ("k8s", APPLY): FAILED})
    assert now.done and now.wants_rollback and now.blocked == [("app", APPLY)]


def test_a_failed_health_check_is_the_component_failing() -> None:
    statuses = {("net", APPLY): OK, ("net", HEALTH): FAILED}
    now = progress(chain(health=True), statuses)
    assert now.done and now.wants_rollback and now.failed == [("net", HEALTH)]


def test_stopping_starts_nothing_more_and_waits_for_what_runs() -> None:
    nodes = apply_graph([Part("a"), Part("b"), Part("c")])
    stopping = progress(nodes, {("a", APPLY): RUNNING}, stopping=True)
    assert stopping.ready == [] and stopping.running == [("a", APPLY)] and not stopping.done
    over = progress(nodes, {("a", APPLY): StepStatus.CANCELLED}, stopping=True)
    assert over.done and over.unstarted == [("b", APPLY), ("c", APPLY)]
    assert over.cancelled == [("a", APPLY)] and not over.succeeded


def test_a_run_is_done_and_succeeded_when_every_step_succeeded_or_was_skipped() -> None:
    nodes = chain()
    statuses: dict[StepKey, StepStatus] = {n.key: OK for n in nodes}
    statuses[("app", APPLY)] = StepStatus.SKIPPED
    assert progress(nodes, statuses).succeeded


def test_gates_run_after_every_component_and_orphan_one_after_the_other() -> None:
    nodes = apply_graph(
        [Part("a"), Part("b")], gates=["smoke", "load"], orphans=[Part("old"), Part("older")]
    )
    applied: dict[StepKey, StepStatus] = {("a", APPLY): OK, ("b", APPLY): OK}
    assert progress(nodes, applied).ready == [("older", DESTROY), ("old", DESTROY)]
    pruned = {**applied, ("old", DESTROY): OK, ("older", DESTROY): OK}
    assert progress(nodes, pruned).ready == [("smoke", GATE)]
    assert progress(nodes, {**pruned, ("smoke", GATE): OK}).ready == [("load", GATE)]


def test_a_failed_component_blocks_the_gates_and_the_pruning() -> None:
    nodes = apply_graph([Part("a", (), "continue")], gates=["smoke"], orphans=[Part("old")])
    now = progress(nodes, {("a", APPLY): FAILED})
    assert now.done and now.blocked == [("old", DESTROY), ("smoke", GATE)]


def test_a_destroy_goes_dependents_first_and_stops_at_the_first_failure() -> None:
    nodes = destroy_graph([Part("net"), Part("k8s", ("net",)), Part("app", ("k8s",)), Part("dns")])
    assert progress(nodes, {}).ready == [("dns", DESTROY), ("app", DESTROY)]
    failed = progress(nodes, {("app", DESTROY): FAILED})
    assert failed.blocked == [("k8s", DESTROY), ("net", DESTROY)]
    assert failed.unstarted == [("dns", DESTROY)] and failed.done


def test_orphans_are_destroyed_dependents_first() -> None:
    nodes = apply_graph([], orphans=[Part("db"), Part("api", ("db",))])
    assert progress(nodes, {}).ready == [("api", DESTROY)]
    assert progress(nodes, {("api", DESTROY): OK}).ready == [("db", DESTROY)]


def test_every_plan_step_is_ready_at_once_and_a_failure_stops_none() -> None:
    nodes = plan_graph(["a", "b", "c"])
    assert len(progress(nodes, {}).ready) == 3
    now = progress(nodes, {("a", StepAction.PLAN): FAILED})
    assert len(now.ready) == 2 and now.failed == [("a", StepAction.PLAN)]


def test_a_dependency_outside_the_run_is_not_waited_for() -> None:
    nodes = apply_graph([Part("app", ("k8s",))])
    assert progress(nodes, {}).ready == [("app", APPLY)]


def test_a_schedule_hands_out_ready_steps_within_the_limit_and_follows_settlements() -> None:
    schedule = Schedule(apply_graph([Part("a"), Part("b"), Part("c", ("a", "b"))]), {})
    assert schedule.take(1) == [("a", APPLY)]
    assert schedule.take(5) == [("b", APPLY)]
    schedule.settle(("a", APPLY), OK)
    assert schedule.take(5) == []
    schedule.settle(("b", APPLY), StepStatus.SKIPPED)
    assert schedule.take(5) == [("c", APPLY)]
    schedule.settle(("c", APPLY), OK)
    assert schedule.progress().succeeded


def test_a_schedule_resumed_from_records_starts_where_they_stopped() -> None:
    recorded = {("net", APPLY): OK, ("net", HEALTH): RUNNING}  # a crash during health
    schedule = Schedule(chain(health=True), {**recorded, ("net", HEALTH): StepStatus.PENDING})
    assert schedule.take(4) == [("net", HEALTH)]


def test_a_stopped_schedule_hands_out_nothing() -> None:
    schedule = Schedule(plan_graph(["a", "b"]), {})
    schedule.stop()
    assert schedule.take(4) == [] and not schedule.has_ready
    assert schedule.progress().unstarted == [("a", StepAction.PLAN), ("b", StepAction.PLAN)]


def test_a_rollback_goes_dependents_first_and_carries_on_past_a_failure() -> None:
    rollback = StepAction.ROLLBACK
    nodes = rollback_graph([Part("net"), Part("k8s", ("net",)), Part("app", ("k8s",))])
    assert progress(nodes, {}).ready == [("app", rollback)]
    failed = progress(nodes, {("app", rollback): FAILED})
    assert failed.ready == [("k8s", rollback)] and failed.blocked == []
    end = progress(nodes, {("app", rollback): FAILED, ("k8s", rollback): OK})
    assert end.ready == [("net", rollback)] and not end.wants_rollback
