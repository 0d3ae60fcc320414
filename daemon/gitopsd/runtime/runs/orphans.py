"""Orphans: components deployed in an environment that it no longer has at a revision.

A component deleted from git, or left out by its `when` or the environment's
`components.include`, keeps its state (and whatever its driver made) until it is destroyed.
It can only be destroyed with what applied it: the driver, checkout and inputs of the
revision recorded in its state, which is loaded here. A destroy takes every component so
(`deployed`), orphaned or not: it brings no revision in, so it never runs a driver of a
revision the environment did not apply (its upstream may never have verified the head).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from gitopsd.engine import selection
from gitopsd.engine.loading import ComponentEntry
from gitopsd.engine.ports import StateStore
from gitopsd.errors import GitopsdError, OrphanError
from gitopsd.model.state import ComponentState
from gitopsd.runtime.runs.revisions import Revisioned

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Orphan:
    """An orphan with the revision that last applied it (its driver, checkout, manifest)."""

    component: ComponentEntry
    source: Revisioned
    state: ComponentState


def unprunable(environment: str, named: Collection[str], *, prunes: bool) -> str | None:
    """Why an apply may not name these orphans (None: it may). Where the environment does
    not prune, an apply never destroys: `destroy` is the way, whichever way it is asked."""
    if prunes or not named:
        return None
    listed = sorted(named)
    return (
        f"{', '.join(listed)}: orphaned, and {environment} does not prune (prune: false); "
        f"destroy with `gitopsd destroy --env {environment} --components {','.join(listed)}`"
    )


def names(store: StateStore, environment: str, target: Revisioned) -> list[str]:
    """Components recorded in `environment` that it does not have at `target`."""
    if environment not in target.repository.environments:
        return []
    chosen, _ = selection.choose(target.repository, environment)
    return [name for name in store.component_names(environment) if name not in chosen]


def find(
    store: StateStore,
    load: Callable[[str], Revisioned],
    environment: str,
    target: Revisioned,
    *,
    named: Collection[str] | None = None,
) -> list[Orphan]:
    """Each orphan of `environment` at `target` (those `named`, if given), with the revision
    that last applied it. Only those are loaded: an orphan a run does not take (an apply of
    other components) must not refuse it for a revision that can no longer be loaded."""
    found = names(store, environment, target)
    return deployed(store, load, environment, [n for n in found if named is None or n in named])


def deployed(
    store: StateStore,
    load: Callable[[str], Revisioned],
    environment: str,
    wanted: Iterable[str],
    *,
    current: Revisioned | None = None,
    unchanged: Collection[str] = (),
) -> list[Orphan]:
    """Each of the `wanted` components that has state in `environment`, in that order, with
    the revision that applied it (those with none have nothing to destroy).

    `current`, the revision the environment is at, stands for it where it has the
    component `unchanged` (planning.as_applied: the fingerprint it was applied with, the
    same files, driver and inputs): an apply leaves a component it finds unchanged at the
    revision that last applied it, and loading each one's would export a checkout for every
    commit that ever changed a component. Any other (applied by a later run that failed, of
    a newer revision or an older one) is destroyed with the revision that last applied it,
    or with `current` if that one cannot be loaded any more (`_applied_by`)."""
    found = []
    loaded: dict[str, Revisioned] = {}  # each revision once, however the components mix them
    for name in wanted:
        state = store.get_component(environment, name)
        if state is None:  # never applied, or destroyed meanwhile
            continue
        same = current is not None and name in unchanged and name in current.repository.components
        source = (
            current if current is not None and same else _applied_by(state, load, loaded, current)
        )
        component = source.repository.components.get(state.name)
        if component is None:
            raise OrphanError(
                f"{state.name} is not in {state.revision[:12]}, the revision that last "
                "applied it: it cannot be destroyed with its own driver"
            )
        found.append(Orphan(component=component, source=source, state=state))
    return found


def _applied_by(
    state: ComponentState,
    load: Callable[[str], Revisioned],
    loaded: dict[str, Revisioned],
    current: Revisioned | None,
) -> Revisioned:
    """The revision that last applied `state`, loaded once however the components mix
    them; `current`, which has the component too, when that one is gone (a rewritten
    branch, then gc, and no copy kept in the data folder): its driver rather than none. An
    orphan, which `current` lacks, has no such fallback."""
    if state.revision not in loaded:
        try:
            loaded[state.revision] = load(state.revision)
        except GitopsdError as error:
            if current is None or state.name not in current.repository.components:
                raise
            log.warning("%s is destroyed with %s, the environment's revision: %s, which last "
                        "applied it, cannot be loaded (%s)", state.name, current.revision[:12],
                        state.revision[:12], error)  # fmt: skip
            return current
    return loaded[state.revision]
