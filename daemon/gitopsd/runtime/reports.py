"""What `status`, `runs` and `history` show, as plain data (the HTTP API serves the same).

`status_report` is the JSON shape of SPEC section 5: environments from the manifests at the
branch head, with what the store knows of them and their components.
"""

from __future__ import annotations

from typing import Any

from gitopsd.engine.loading import EnvironmentEntry, Repository
from gitopsd.engine.ports import StateStore
from gitopsd.model.state import (
    ComponentStatus,
    EnvironmentState,
    EnvironmentStatus,
    Event,
    Run,
    Step,
)


def status_report(
    store: StateStore, repository: Repository | None, *, environment: str | None = None
) -> dict[str, Any]:
    """`{"environments": [...]}` for every environment in the manifests or the store."""
    names = set(repository.environments if repository else ())
    names |= {state.name for state in store.list_environments()}
    if environment is not None:
        names &= {environment}
    return {"environments": [_environment(store, repository, name) for name in sorted(names)]}


def _environment(store: StateStore, repository: Repository | None, name: str) -> dict[str, Any]:
    state = store.get_environment(name)
    entry = repository.environments.get(name) if repository else None
    kept = _members(repository, name)
    return {
        "name": name,
        "revision": state.revision if state else None,
        "previous_revision": state.previous_revision if state else None,
        "status": state.status.value if state else "unknown",
        "upstream": entry.manifest.upstream if entry else None,
        "pending_approval": _pending_approval(store, entry, state),
        "updated_at": state.updated_at.isoformat() if state else None,
        "components": [
            {
                "name": component.name,
                "status": (
                    ComponentStatus.ORPHANED.value
                    if kept is not None and component.name not in kept
                    else component.status.value
                ),
                "revision": component.revision,
                "outputs": component.outputs,
                "drift": component.drift.value,
            }
            for component in store.list_components(name)
        ],
    }


def _members(repository: Repository | None, name: str) -> set[str] | None:
    """The components `name` has at the head; one deployed but not among them is shown
    `orphaned` (computed here, never stored). None when the head's manifests are unknown."""
    if repository is None or name not in repository.environments:
        return None
    from gitopsd.engine import selection

    chosen, _ = selection.choose(repository, name)
    return set(chosen)


def _pending_approval(
    store: StateStore, entry: EnvironmentEntry | None, state: EnvironmentState | None
) -> dict[str, Any] | None:
    """SPEC 5's `{"revision", "approvals", "required"}` while a revision waits for approvals."""
    if state is None or state.status is not EnvironmentStatus.WAITING_APPROVAL:
        return None
    from gitopsd.runtime import promoting  # the run machinery, only for an environment waiting

    revision = promoting.pending_approval(store, state.name)
    if revision is None:
        return None
    name = state.name
    return {
        "revision": revision,
        "approvals": [a.approver for a in store.list_approvals(name, revision)],
        "required": entry.manifest.spec.approvals.required if entry else None,
    }


def run_report(run: Run, steps: list[Step]) -> dict[str, Any]:
    data = run.model_dump(mode="json")
    data["steps"] = [step.model_dump(mode="json", exclude={"previous_state"}) for step in steps]
    return data


def event_report(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")
