"""What `status`, `runs` and `history` show, as plain data (the HTTP API serves the same).

`status_report` is the JSON shape of SPEC section 5: environments from the manifests at the
branch head, with what the store knows of them and their components.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitopsd.engine import approving, governing, selection
from gitopsd.engine.loading import EnvironmentEntry, Repository
from gitopsd.engine.ports import StateStore
from gitopsd.errors import GitSourceError
from gitopsd.model.state import (
    ComponentStatus,
    EnvironmentState,
    EnvironmentStatus,
    Event,
    Request,
    Run,
    Step,
)
from gitopsd.runtime.records import promotion_records, sensitivity

OpenRequests = Callable[[str], list[Request]]
ManifestsAt = Callable[[str], Repository | None]  # a revision's manifests, None if not valid
Authors = Callable[[str], approving.Person | None]  # a revision's commit author, None if unknown


def status_report(
    store: StateStore,
    repository: Repository | None,
    *,
    environment: str | None = None,
    open_requests: OpenRequests | None = None,
    manifests_at: ManifestsAt | None = None,
    authors: Authors | None = None,
) -> dict[str, Any]:
    """`{"environments": [...]}` for every environment in the manifests or the store; each
    with its open requests (`open_requests`: the daemon's, held ones included; default the
    store's), and its upstream and approvals as admission reads them: the head's rules held
    to those of the revision it is at (`manifests_at` reads them; without it, the head's),
    the author's own approval not counted under `forbid_author` (`authors` names him)."""
    names = set(environment_names(store, repository))
    if environment is not None:
        names &= {environment}
    requests = open_requests or (lambda name: store.list_requests(name, open_only=True))
    return {
        "environments": [
            _environment(store, repository, name, requests(name), manifests_at, authors)
            for name in sorted(names)
        ]
    }


def environment_names(store: StateStore, repository: Repository | None) -> list[str]:
    """The environments status knows: those of the manifests and those the store has."""
    names = set(repository.environments if repository else ())
    names |= {state.name for state in store.list_environments()}
    return sorted(names)


def _environment(
    store: StateStore,
    repository: Repository | None,
    name: str,
    requests: list[Request],
    manifests_at: ManifestsAt | None,
    authors: Authors | None,
) -> dict[str, Any]:
    state = store.get_environment(name)
    entry = repository.environments.get(name) if repository else None
    if entry is not None and state is not None and manifests_at is not None:
        entry = governing.governed_at(entry, state.revision, manifests_at)
    kept = _members(repository, name)
    pending = _pending_approval(store, entry, state, authors)
    return {
        "name": name,
        "revision": state.revision if state else None,
        "previous_revision": state.previous_revision if state else None,
        "status": state.shown_status.value if state else "unknown",
        "upstream": entry.manifest.upstream if entry else None,
        "pending_approval": pending,
        "waiting": _waiting(state, pending),
        "suspension": (
            state.suspension.model_dump(mode="json") if state and state.suspension else None
        ),
        "updated_at": state.updated_at.isoformat() if state else None,
        "verified": _verified(store, state),
        "components": [
            {
                "name": component.name,
                "status": (
                    ComponentStatus.ORPHANED.value
                    if kept is not None and component.name not in kept
                    else component.status.value
                ),
                "revision": component.revision,
                "outputs": sensitivity.shown_outputs(component),
                "drift": component.drift.value,
            }
            for component in store.list_components(name)
        ],
        "requests": [_open_request(r) for r in requests],
    }


def _verified(store: StateStore, state: EnvironmentState | None) -> list[str]:
    """The revisions the environment verified, newest first: what it may roll back to."""
    if state is None:
        return []
    held = [hold.revision for hold in promotion_records.holds(store, state.name)]
    return list(dict.fromkeys(reversed(held)))


def _open_request(request: Request) -> dict[str, Any]:
    """What `status` says of a request not finished: what it asks, where it stands, why."""
    return request.model_dump(
        mode="json",
        include={"id", "action", "revision", "trigger", "actor", "status", "reason"}
        | {"last_error", "attempts", "next_attempt_at", "created_at"},
    )


def _members(repository: Repository | None, name: str) -> set[str] | None:
    """The components `name` has at the head; one deployed but not among them is shown
    `orphaned` (computed here, never stored). None when the head's manifests are unknown."""
    if repository is None or name not in repository.environments:
        return None

    chosen, _ = selection.choose(repository, name)
    return set(chosen)


def commit_authors(read: Callable[[str], tuple[str, str]]) -> Authors:
    """A revision's commit author as `read` (a git source's `author`) gives it, as admission
    takes it for `forbid_author`; None when git does not know the revision."""

    def author(revision: str) -> approving.Person | None:
        try:
            return approving.Person(*read(revision))
        except GitSourceError:
            return None

    return author


def _pending_approval(
    store: StateStore,
    entry: EnvironmentEntry | None,
    state: EnvironmentState | None,
    authors: Authors | None,
) -> dict[str, Any] | None:
    """SPEC 5's `{"revision", "approvals", "required"}`, and who asked (`asked_by`), while a
    revision waits for approvals (the environment's pending approval record, if it still
    counts; the approvals are records of their own)."""
    pending = promotion_records.pending(state, entry)
    if state is None or pending is None:
        return None
    # as admission counted it, or more if the rules ask for more since
    asked = entry.manifest.spec.approvals.required if entry else 0
    required = max(pending.required, asked)
    given = approving.from_records(store.list_approvals(state.name, pending.revision))
    policy = entry.manifest.spec.approvals if entry else None
    asks_author = policy is not None and policy.forbid_author  # as admission asks git
    author = authors(pending.revision) if asks_author and authors is not None else None
    counting = approving.counted(policy, given, author) if policy is not None else given
    return {
        "revision": pending.revision,
        "approvals": [a.approver.name for a in counting],
        "required": required,
        "asked_by": pending.asked_by,
    }


def _waiting(
    state: EnvironmentState | None, pending: dict[str, Any] | None
) -> dict[str, Any] | None:
    """What holds the environment now, and until when (None: unknown, or nothing); a wait
    for approvals says who approved so far (`approvals`) of how many (`required`), and its
    reason counts them now (the stored one was written when the wait began, and only the
    environment's worker writes that record, never an approval)."""
    if state is None or state.waiting is None:
        return None
    waiting = state.waiting.model_dump(mode="json")
    if waiting["kind"] == EnvironmentStatus.WAITING_APPROVAL and pending is not None:
        approvals, required = pending["approvals"], pending["required"]
        missing = max(0, required - len(approvals))
        needs = f"needs {plural(missing, 'more approval')}" if missing else "is approved"
        waiting |= {
            "reason": f"{pending['revision'][:12]} {needs}",
            "approvals": approvals,
            "required": required,
        }
    return waiting


def plural(count: int, noun: str) -> str:
    """`1 more approval`, `2 more approvals`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def run_report(run: Run, steps: list[Step]) -> dict[str, Any]:
    data = run.model_dump(mode="json")
    data["steps"] = [step.model_dump(mode="json", exclude={"previous_state"}) for step in steps]
    return data


def run_summary(run: Run) -> dict[str, Any]:
    """A run as lists show it: its record without steps, whose output a run of thousands of
    components would make megabytes (a run's steps come with `run_report`, a page at a time)."""
    return run.model_dump(mode="json")


def event_report(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")


def request_report(request: Request) -> dict[str, Any]:
    """A request no run answers for yet (queued, waiting, retrying with its last error,
    superseded...), shaped like a run summary without steps so lists can mix the two."""
    data = request.model_dump(mode="json")
    data["steps"] = []
    return data
