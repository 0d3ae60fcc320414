"""A component's recorded inputs, whole again, for the calls that use them.

The store keeps a secret-named input rendered from the repository alone (`db_password:
${{ vars.db_password }}`) only as its keyed hash (`hashed_inputs`, adapters/sealed_store.py),
so that neither the database nor its backups, nor the key beside them, give the value back.
The calls that use what a component was applied with (its health probe, a drift check, a
destroy, a rollback to its previous state) render it again from the manifests of the
revision the component was applied at: git content, which does not change, so the value is
the one applied. Its keyed hash is checked against the record all the same: with another
encryption key (or a record that is not what it says) the step fails, saying so, and the
driver is not called. A `${{ secrets.NAME }}` reference renders as itself and is looked up
when the driver is called, as on every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gitopsd.adapters.encryption import keyed_hash
from gitopsd.engine import rendering
from gitopsd.engine.loading import Repository
from gitopsd.engine.references import ExpressionError
from gitopsd.engine.selection import scope_for
from gitopsd.errors import PermanentError
from gitopsd.model.state import ComponentState, kept_hash
from gitopsd.runtime.records.sensitivity import Digest
from gitopsd.runtime.runs.steps import StepError

Manifests = Callable[[str], Repository]  # a revision's manifests (Workspace.manifests)


def recalled(
    state: ComponentState, *, manifests: Manifests | None, digest: Digest | None
) -> Mapping[str, Any]:
    """`state`'s inputs, with its `hashed_inputs` rendered again from the manifests of
    `state.revision`; StepError if one cannot be, or is not the value it was applied with."""
    kept = {
        name: found
        for name in state.hashed_inputs
        if (found := kept_hash(state.inputs.get(name))) is not None
    }
    if not kept:
        return state.inputs
    whole = dict(state.inputs)
    repository = _repository(state, manifests)
    for name, recorded in kept.items():
        whole[name] = _rendered_again(state, name, recorded, repository, digest)
    return whole


def _repository(state: ComponentState, manifests: Manifests | None) -> Repository:
    """The manifests of `state.revision`; a revision that cannot be used is the step's
    failure, while one that cannot be read for now (TemporaryError) stops the run as any
    fault that passes does."""
    try:
        if manifests is None:
            raise PermanentError("no repository to read them from")
        return manifests(state.revision)
    except PermanentError as error:
        raise StepError(
            _cannot(state, f"its manifests at {state.revision[:12]}: {error}")
        ) from error


def _rendered_again(
    state: ComponentState,
    name: str,
    recorded: str,
    repository: Repository,
    digest: Digest | None,
) -> Any:
    at = state.revision[:12]
    component = repository.components.get(state.name)
    environment = repository.environments.get(state.environment)
    template = component.manifest.spec.inputs.get(name) if component else None
    if template is None or environment is None or digest is None:
        raise StepError(_cannot(state, f"input {name} is not in its manifests at {at}"))
    scope = scope_for(environment, state.name, revision=state.revision)
    try:
        value = rendering.render(template, scope)
    except ExpressionError as error:
        raise StepError(_cannot(state, f"input {name} at {at}: {error.message}")) from error
    if keyed_hash(digest, value) != recorded:
        raise StepError(
            f"{state.name}: input {name} is kept only as a hash, and rendered again at {at} it"
            " is not the value it was applied with: the encryption key is not the one the"
            f" state was written with (set GITOPSD_ENCRYPTION_KEY to it, or apply {state.name}"
            " again)"
        )
    return value


def _cannot(state: ComponentState, why: str) -> str:
    return (
        f"{state.name}: an input kept only as a hash cannot be rendered again ({why}):"
        f" apply {state.name} again"
    )
