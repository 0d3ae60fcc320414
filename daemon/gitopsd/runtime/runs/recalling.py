"""A component's recorded inputs, whole again, for the calls that use them.

The store keeps a secret-named input (`db_password`) only as its keyed hash
(adapters/sealed_store.py), so that neither the database nor its backups, nor the key beside
them, give the value back. The calls that use what a component was applied with (its health
probe, a drift check, a destroy, a rollback to its previous state) render such an input again
from the component's manifest, with the variables of the revision they use and the outputs
its dependencies have, and use it only if its keyed hash is the recorded one: a driver never
gets a value other than the one the component was applied with. When it is not (the value
changed since and was not applied, or the key is not the one the record was written with),
the step fails, saying so, and the driver is not called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gitopsd.adapters.encryption import keyed_hash
from gitopsd.engine import rendering
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.references import ExpressionError
from gitopsd.engine.selection import scope_for
from gitopsd.model.state import ComponentState, kept_hash
from gitopsd.runtime.runs.steps import StepError

Digest = Callable[[bytes], str]
Outputs = Mapping[str, Mapping[str, Any]]  # a dependency's name -> its outputs


def recalled(
    component: ComponentEntry,
    state: ComponentState,
    *,
    repository: Repository,
    outputs: Callable[[], Outputs],
    digest: Digest | None,
) -> Mapping[str, Any]:
    """`state`'s inputs, with those kept only as a hash rendered again from `component` (its
    manifest at `repository`'s revision) and `outputs()` (its dependencies' outputs, which its
    inputs were rendered from: asked for only then); StepError if one cannot be, or is not
    the value `state` was applied with."""
    kept = {name: found for name, value in state.inputs.items() if (found := kept_hash(value))}
    if not kept:
        return state.inputs
    whole = dict(state.inputs)
    known = outputs()
    for name, recorded in kept.items():
        whole[name] = _rendered_again(
            component, state, name, recorded, repository=repository, outputs=known, digest=digest
        )
    return whole


def dependency_outputs(
    component: ComponentEntry, read: Callable[[str], ComponentState | None]
) -> Callable[[], Outputs]:
    """The outputs `component`'s dependencies have, each read with `read` (None: gone),
    when asked."""

    def read_all() -> Outputs:
        states = (read(name) for name in component.manifest.spec.depends_on)
        return {state.name: state.outputs for state in states if state is not None}

    return read_all


def _rendered_again(
    component: ComponentEntry,
    state: ComponentState,
    name: str,
    recorded: str,
    *,
    repository: Repository,
    outputs: Outputs,
    digest: Digest | None,
) -> Any:
    owner = state.name
    at = repository.revision[:12]
    template = component.manifest.spec.inputs.get(name)
    environment = repository.environments.get(state.environment)
    if template is None or environment is None or digest is None:
        raise StepError(
            f"{owner}: input {name} is kept only as a hash and cannot be rendered again at"
            f" {at}: apply {owner} again first"
        )
    own = {d: dict(outputs[d]) for d in component.manifest.spec.depends_on if d in outputs}
    scope = scope_for(environment, owner, revision=state.revision, outputs=own)
    try:
        value = rendering.render(template, scope)
    except ExpressionError as error:
        raise StepError(
            f"{owner}: input {name} is kept only as a hash and cannot be rendered again at"
            f" {at}: {error.message}: apply {owner} again first"
        ) from error
    if keyed_hash(digest, value) != recorded:
        raise StepError(
            f"{owner}: input {name} is kept only as a hash, and rendered again at {at} it is"
            f" not the value {owner} was applied with (it changed since, or the encryption key"
            f" is not the one the state was written with): apply {owner} again first"
        )
    return value
