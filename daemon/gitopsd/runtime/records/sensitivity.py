"""Which values are sensitive, and how they are shown: as `***`.

Sensitive are the outputs a component lists in `sensitive_outputs`, the inputs whose names
mark them secret (the rule of adapters/driver_output.py: TOKEN, SECRET, PASSWORD...), and,
as Terraform propagates `sensitive`, every input rendered from a dependency's sensitive output,
alone or inside a larger string. Their names are recorded with the component's state, so the
store keeps none of them in clear (adapters/sealed_store.py: a secret-named input rendered
from the repository alone only as a keyed hash, `hashed_inputs`; the others encrypted),
drivers' output has them redacted, and status, the API, reports and diffs show `***` in
their place.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from pydantic import JsonValue

from gitopsd.adapters.driver_output import is_secret_name
from gitopsd.adapters.encryption import is_sealed, keyed_hash
from gitopsd.engine import rendering, secret_references
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.planning import Conceal
from gitopsd.engine.ports import SecretSource
from gitopsd.engine.references import Reference
from gitopsd.errors import MissingSecretError
from gitopsd.model.state import ComponentState

SHOWN = "***"

Declared = Mapping[str, Collection[str]]  # component name -> its sensitive outputs
Digest = Callable[[bytes], str]  # a keyed hash (adapters/encryption.py Sealer.digest)


def declared(repository: Repository, states: Iterable[ComponentState] = ()) -> dict[str, set[str]]:
    """Each component's sensitive outputs: as recorded with its state (what the values stored
    now were produced under), and as its manifest at `repository`'s revision declares. Only
    the components that have some are named (a run holds this while it goes, and an empty
    set for each of thousands of components was most of it)."""
    found: dict[str, set[str]] = {}
    for state in states:
        if state.sensitive_outputs:
            found.setdefault(state.name, set()).update(state.sensitive_outputs)
    for name, entry in repository.components.items():
        if entry.manifest.spec.sensitive_outputs:
            found.setdefault(name, set()).update(entry.manifest.spec.sensitive_outputs)
    return found


def sensitive_inputs(component: ComponentEntry, outputs: Declared) -> list[str]:
    """The names of `component`'s inputs that are sensitive (see the module docstring)."""
    inputs = component.manifest.spec.inputs
    named = {name for name in inputs if is_secret_name(name)}
    if not any(outputs.get(d) for d in component.manifest.spec.depends_on):
        return sorted(named)  # only a dependency's outputs can be rendered into an input
    tainted = {
        str(path[0])
        for path, reference in _references(inputs)
        if reference.component is not None
        and reference.parts[-1] in outputs.get(reference.component, ())
    }
    return sorted(named | tainted)


def hashed_inputs(component: ComponentEntry, sensitive: Collection[str]) -> list[str]:
    """Of the `sensitive` inputs, those the store keeps only as a keyed hash: secret-named,
    and rendered from the repository alone, so the manifests of the revision they were
    applied at render them again, the same (runtime/runs/recalling.py). One that reads a
    dependency's output stays encrypted: the output may have changed since, and a destroy
    or rollback must have the value it was applied with."""
    inputs = component.manifest.spec.inputs
    named = [name for name in sensitive if is_secret_name(name)]
    if not named:
        return []
    from_outputs = {
        str(path[0]) for path, reference in _references(inputs) if reference.component is not None
    }
    return [name for name in named if name not in from_outputs]


def concealer(
    digest: Digest | None, outputs: Declared, secrets: SecretSource | None = None
) -> Conceal | None:
    """How inputs enter a fingerprint (engine/planning.py): each sensitive one as the keyed
    hash of its value, so the stored fingerprint reveals nothing of it; and the keyed hash of
    each `${{ secrets.NAME }}` value the component references (its inputs hold only the
    name), so that a rotated secret changes the fingerprint and re-applies the component.
    None without a key (a workspace with no sealing store): inputs enter as they are."""
    if digest is None:
        return None

    def conceal(component: ComponentEntry, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        names = sensitive_inputs(component, outputs)
        concealed = {
            name: keyed_hash(digest, value) if name in names else value
            for name, value in inputs.items()
        }
        used = secret_references.referenced(component)
        if secrets is not None and used:  # `$` starts no input name: no input is replaced
            concealed[SECRETS_KEY] = {name: _secret_hash(digest, secrets, name) for name in used}
        return concealed

    return conceal


SECRETS_KEY = "$secrets"


def _secret_hash(digest: Digest, secrets: SecretSource, name: str) -> str:
    """The keyed hash of a secret's value; a missing one hashes as missing (the call that
    needs it fails, naming it, and the next plan after it is set sees a change)."""
    try:
        value = secrets.value(name)
    except MissingSecretError:
        return "missing"
    return keyed_hash(digest, value)


def shown_outputs(state: ComponentState) -> dict[str, JsonValue]:
    """The component's outputs as status and the API show them."""
    return masked(state.outputs, state.sensitive_outputs)


def masked(values: Mapping[str, Any], names: Collection[str]) -> dict[str, Any]:
    """`values` with those named (and any still sealed) shown as `***`."""
    return {
        name: SHOWN if name in names or is_sealed(value) else value
        for name, value in values.items()
    }


def _references(inputs: Mapping[str, Any]) -> list[tuple[rendering.Path, Reference]]:
    try:
        return list(rendering.references_in(inputs))
    except rendering.RenderError:  # validation reports it; rendering will fail on it too
        return []
