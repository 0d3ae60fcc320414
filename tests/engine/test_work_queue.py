"""An environment's queue: operators first, bursts of commits coalesced, nothing lost."""

from __future__ import annotations

from gitopsd.engine.queueing import EnvironmentQueue, Priority, Request
from gitopsd.model.state import RequestKind


def request(
    id: str,
    priority: Priority,
    *,
    action: RequestKind = RequestKind.APPLY,
    revision: str | None = None,
) -> Request:
    return Request(id=id, environment="dev", priority=priority, action=action, revision=revision)


def test_an_operator_request_runs_before_a_commit_before_a_scheduled_check() -> None:
    queue = EnvironmentQueue()
    queue.put(request("drift", Priority.SCHEDULED, action=RequestKind.DRIFT))
    queue.put(request("c1", Priority.COMMIT, revision="c1"))
    queue.put(request("op", Priority.OPERATOR, action=RequestKind.PLAN))
    assert [queue.pop().id for _ in range(3)] == ["op", "c1", "drift"]  # type: ignore[union-attr]
    assert queue.pop() is None


def test_operator_requests_keep_their_order_and_never_coalesce() -> None:
    queue = EnvironmentQueue()
    for name in ("first", "second", "third"):
        assert queue.put(request(name, Priority.OPERATOR)) == []
    assert [r.id for r in queue.pending()] == ["first", "second", "third"]


def test_fifty_quick_commits_leave_one_request_for_the_newest() -> None:
    queue = EnvironmentQueue()
    superseded: list[Request] = []
    for number in range(50):
        superseded += queue.put(request(f"r{number}", Priority.COMMIT, revision=f"c{number}"))
    assert [r.revision for r in queue.pending()] == ["c49"]
    assert [r.revision for r in superseded] == [f"c{n}" for n in range(49)]


def test_a_commit_does_not_supersede_an_operator_request() -> None:
    queue = EnvironmentQueue()
    queue.put(request("op", Priority.OPERATOR, revision="old"))
    assert queue.put(request("c", Priority.COMMIT, revision="new")) == []
    assert [r.id for r in queue.pending()] == ["op", "c"]


def test_a_queued_scheduled_check_absorbs_an_identical_one() -> None:
    queue = EnvironmentQueue()
    first = request("d1", Priority.SCHEDULED, action=RequestKind.DRIFT)
    second = request("d2", Priority.SCHEDULED, action=RequestKind.DRIFT)
    assert queue.put(first) == []
    assert queue.put(second) == [second]
    assert [r.id for r in queue.pending()] == ["d1"]
    assert len(queue) == 1


def test_a_queued_commit_absorbs_a_request_for_the_same_revision() -> None:
    """A restart picks a held commit request up again, then sees the head again: the second
    request is the same work, not a newer commit superseding the first ("X superseded by X"
    in the audit trail)."""
    queue = EnvironmentQueue()
    held = request("picked-up", Priority.COMMIT, revision="c1")
    again = request("seen-again", Priority.COMMIT, revision="c1")
    assert queue.put(held) == []
    assert queue.put(again) == [again]
    assert [r.id for r in queue.pending()] == ["picked-up"]
    newer = request("newer", Priority.COMMIT, revision="c2")
    assert queue.put(newer) == [held]
    assert [r.id for r in queue.pending()] == ["newer"]
