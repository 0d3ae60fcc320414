"""The state store as the runtime sees it, with sensitive values encrypted at rest.

A component's record names the inputs and outputs that are sensitive (`sensitive_inputs`,
`sensitive_outputs`: what its manifest declares, secret-named inputs, inputs rendered from a
dependency's sensitive outputs). This wrapper hides those values when a record is saved, in
the component's own record and in the copy a step keeps for a rollback: the `hashed_inputs`
(secret-named, rendered from the repository alone) are kept only as their keyed hash
(`{"$hashed": ...}`: the manifests at the record's revision render them again,
runtime/runs/recalling.py), the others are sealed (adapters/encryption.py) and opened when the
record is read: the runtime renders dependents' inputs from outputs and calls drivers with
clear values, and the database, its WAL and backups hold no clear value.

A value the key cannot open is left sealed: `status` and the API show it as `***` like any
sensitive value, and only a driver call that needs it fails, with a message naming
GITOPSD_ENCRYPTION_KEY (runtime/runs/steps.py). Every other method is the wrapped store's own;
a shared store's fenced views (what a PostgreSQL leader writes through) are sealed too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from gitopsd.adapters.encryption import Sealer, is_sealed, keyed_hash
from gitopsd.engine.ports import Fencing, OnFenced, StateStore
from gitopsd.errors import EncryptionKeyError
from gitopsd.model.state import HASHED, ComponentState, Step, kept_hash


class SealedStore:
    """`inner`, with the sensitive values of component records sealed by `sealer`."""

    def __init__(self, inner: StateStore, sealer: Sealer) -> None:
        self._inner = inner
        self._sealer = sealer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    # --- a shared store's fenced views (runtime/service/leadership.py) stay sealed ---------

    def fencing(self) -> Fencing | None:
        """The wrapped store's fencing (None: not shared), whose views are sealed too."""
        inner = self._inner.fencing()
        return None if inner is None else SealedFencing(inner, self._sealer)

    def get_component(self, environment: str, name: str) -> ComponentState | None:
        state = self._inner.get_component(environment, name)
        return None if state is None else self._opened(state)

    def list_components(
        self, environment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ComponentState]:
        states = self._inner.list_components(environment, after=after, limit=limit)
        return [self._opened(state) for state in states]

    def save_component(self, state: ComponentState) -> None:
        self._inner.save_component(self._sealed(state))

    def save_components(self, states: Sequence[ComponentState]) -> None:
        self._inner.save_components([self._sealed(state) for state in states])

    def save_step(self, step: Step) -> None:
        self._inner.save_step(self._sealed_step(step))

    def save_steps(self, steps: Iterable[Step]) -> None:
        self._inner.save_steps(self._sealed_step(step) for step in steps)

    def list_steps(
        self, run_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        steps = self._inner.list_steps(run_id, after=after, limit=limit)
        return [self._opened_step(step) for step in steps]

    # --- records ------------------------------------------------------------------------------

    def _sealed(self, state: ComponentState) -> ComponentState:
        if not (state.sensitive_inputs or state.sensitive_outputs):
            return state
        update = {
            "inputs": self._hide_inputs(state.inputs, state),
            "outputs": self._seal(state.outputs, state.sensitive_outputs),
        }
        return state.model_copy(update=update)

    def _opened(self, state: ComponentState) -> ComponentState:
        if not (state.sensitive_inputs or state.sensitive_outputs):
            return state
        update = {"inputs": self._open(state.inputs), "outputs": self._open(state.outputs)}
        return state.model_copy(update=update)

    def _sealed_step(self, step: Step) -> Step:
        if step.previous_state is None:
            return step
        return step.model_copy(update={"previous_state": self._sealed(step.previous_state)})

    def _opened_step(self, step: Step) -> Step:
        if step.previous_state is None:
            return step
        return step.model_copy(update={"previous_state": self._opened(step.previous_state)})

    # --- values -------------------------------------------------------------------------------

    def _hide_inputs(
        self, inputs: Mapping[str, JsonValue], state: ComponentState
    ) -> dict[str, JsonValue]:
        """The `hashed_inputs` as their keyed hash, the other sensitive ones sealed."""
        hashed: dict[str, JsonValue] = {
            name: {HASHED: keyed_hash(self._sealer.digest, value)}
            for name, value in inputs.items()
            if name in state.hashed_inputs and not _hidden(value)
        }
        return {**self._seal(inputs, set(state.sensitive_inputs) - set(hashed)), **hashed}

    def _seal(
        self, values: Mapping[str, JsonValue], names: Collection[str]
    ) -> dict[str, JsonValue]:
        return {
            name: self._sealer.seal(value) if name in names and not _hidden(value) else value
            for name, value in values.items()
        }

    def _open(self, values: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
        return {name: self._open_one(value) for name, value in values.items()}

    def _open_one(self, value: JsonValue) -> JsonValue:
        if not is_sealed(value):
            return value
        try:
            return self._sealer.open(value)
        except EncryptionKeyError:
            return value  # shown as ***; a driver call needing it says what is wrong


def _hidden(value: JsonValue) -> bool:
    """Sealed or hashed already (a record read still sealed, saved again)."""
    return is_sealed(value) or kept_hash(value) is not None


def holds_sealed(store: StateStore) -> bool:
    """Whether any component record of `store` holds a value sealed or hashed with the key:
    then a missing key file was lost, and a new key must not replace it
    (adapters/encryption.py)."""
    for environment in store.list_environments():
        for state in store.list_components(environment.name):
            if any(_hidden(value) for value in (*state.inputs.values(), *state.outputs.values())):
                return True
    return False


@dataclass(frozen=True)
class SealedFencing:
    """A shared store's fencing whose fenced views seal like the store they come from."""

    inner: Fencing
    sealer: Sealer

    @property
    def url(self) -> str:
        return self.inner.url

    def fenced(self, epoch: int, *, on_fenced: OnFenced | None = None) -> SealedStore:
        return SealedStore(self.inner.fenced(epoch, on_fenced=on_fenced), self.sealer)
