"""The step book of a run: a step recorded unchanged is found as it was saved."""

from __future__ import annotations

from datetime import UTC, datetime

from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.model.state import Run, RunAction, StepAction, StepStatus
from gitopsd.runtime.runs.steps import StepBook

RUN = Run(
    id="r1",
    environment="dev",
    revision="abc",
    action=RunAction.APPLY,
    created_at=datetime(2026, 12, 5, 10, tzinfo=UTC),
)


def test_an_unchanged_step_is_found_as_it_was_saved() -> None:
    store = MemoryStore()
    book = StepBook([])
    saved = [
        book.unchanged(RUN, "vpc", StepAction.APPLY, "f" * 64),
        book.unchanged(RUN, "vpc", StepAction.HEALTH, None),
        book.new(RUN, "dns", StepAction.APPLY, fingerprint="e" * 64),
    ]
    store.save_steps(saved)
    assert [book.find(s.component, s.action) for s in saved] == store.list_steps(RUN.id)
    assert [s.index for s in saved] == [0, 1, 2]
    assert book.status("vpc", StepAction.APPLY) is StepStatus.SKIPPED
    assert book.status("dns", StepAction.APPLY) is StepStatus.PENDING
    assert book.status("db", StepAction.APPLY) is None and book.find("db", StepAction.APPLY) is None


def test_a_new_step_for_an_unchanged_one_is_that_step_and_a_record_replaces_it() -> None:
    book = StepBook([])
    unchanged = book.unchanged(RUN, "vpc", StepAction.HEALTH, None)
    assert book.new(RUN, "vpc", StepAction.HEALTH) == unchanged
    ran = unchanged.model_copy(update={"status": StepStatus.SUCCEEDED, "output": "ok"})
    book.record(ran)
    assert book.find("vpc", StepAction.HEALTH) == ran
    assert book.status("vpc", StepAction.HEALTH) is StepStatus.SUCCEEDED
