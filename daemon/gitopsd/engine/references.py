"""Names manifests may read: `env.name`, `revision`, `vars.<n>`, `components.<c>.outputs.<k>`,
`secrets.<NAME>`.

Pipeline: git -> load -> validate/plan -> execute. Validation parses every `${{ ... }}` placeholder
(rendering) and every `when` condition (conditions) into `Reference`s, so a typo or a reference to a
component that is not a dependency fails before anything runs; planning and execution then
`resolve` the same references against a `Scope` built per environment and revision. Keeping the
grammar of names in one module means both languages accept exactly the same names (SPEC 3.1, 3.2).
A secret is never resolved here: `secrets.NAME` resolves to its own canonical text, which only
the driver runner replaces, at the call (engine/secret_references.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_REFERENCE_LENGTH = 256
ALLOWED_FORMS = (
    "env.name, revision, vars.<name>, components.<component>.outputs.<key> or secrets.<NAME>"
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
SECRET_NAME = re.compile(r"[A-Za-z0-9_]+\Z")  # also a file name in --secrets-dir: no '/', no '.'


def secret_marker(name: str) -> str:
    """What `secrets.NAME` renders to: the reference itself, in one spelling, so stored and
    shown inputs name the secret and the driver runner finds it (secret_references)."""
    return "${{ secrets." + name + " }}"


# not in gitopsd.errors: the pure core's; validation and rendering report it as a problem
class ExpressionError(ValueError):
    """A reference, condition or placeholder that cannot be parsed or resolved.

    `column` is the 1-based offset in the expression text where it went wrong, when known.
    """

    def __init__(self, message: str, *, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return f"{self.message} (at column {self.column})"


@dataclass(frozen=True)
class Reference:
    """A parsed name; build it with `parse_reference`, which guarantees one of the allowed forms."""

    text: str
    root: str
    parts: tuple[str, ...]

    @property
    def component(self) -> str | None:
        """The component whose outputs a `components.*` reference reads, else None."""
        return self.parts[0] if self.root == "components" else None


@dataclass(frozen=True)
class Scope:
    """What references resolve against: one environment at one revision, for one component."""

    environment: str
    revision: str
    variables: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)
def parse_reference(text: str) -> Reference:
    """Parse a dotted name such as `vars.region`; raises ExpressionError naming what is wrong.

    Cached: thousands of components repeat the same few references (`vars.region`).
    """
    stripped = text.strip()
    if not stripped:
        raise ExpressionError(f"empty reference; expected {ALLOWED_FORMS}", column=1)
    if len(stripped) > MAX_REFERENCE_LENGTH:
        raise ExpressionError(f"reference is longer than {MAX_REFERENCE_LENGTH} characters")
    first_column = len(text) - len(text.lstrip()) + 1
    segments = stripped.split(".")
    _check_segments(segments, first_column=first_column)
    root, parts = segments[0], tuple(segments[1:])
    checker = _ROOT_CHECKERS.get(root)
    if checker is None:
        message = f"unknown name {root!r}; a reference is one of {ALLOWED_FORMS}"
        raise ExpressionError(message, column=first_column)
    problem = checker(parts)
    if problem is not None:
        raise ExpressionError(f"invalid reference {stripped!r}: {problem}", column=first_column)
    return Reference(text=stripped, root=root, parts=parts)


def resolve(reference: Reference, scope: Scope) -> Any:
    """The value `reference` names in `scope`; raises ExpressionError when it is not there."""
    if reference.root == "env":
        return scope.environment
    if reference.root == "revision":
        return scope.revision
    if reference.root == "vars":
        return _resolve_variable(reference.parts[0], scope)
    if reference.root == "components":
        return _resolve_output(reference, scope)
    if reference.root == "secrets":
        return secret_marker(reference.parts[0])
    raise ExpressionError(f"unknown name {reference.root!r}; a reference is one of {ALLOWED_FORMS}")


def _resolve_variable(name: str, scope: Scope) -> Any:
    if name not in scope.variables:
        raise ExpressionError(f"unknown variable {name!r}")
    return scope.variables[name]


def _resolve_output(reference: Reference, scope: Scope) -> Any:
    component, _, key = reference.parts
    outputs = scope.outputs.get(component)
    if outputs is None:
        raise ExpressionError(f"no outputs recorded for component {component!r}")
    if key not in outputs:
        raise ExpressionError(f"component {component!r} has no output {key!r}")
    return outputs[key]


def _check_segments(segments: list[str], *, first_column: int) -> None:
    """Reject empty segments and names starting with '_' (dunders), pointing at the segment."""
    column = first_column
    for segment in segments:
        if not segment:
            raise ExpressionError("empty name between dots", column=column)
        if segment.startswith("_"):
            message = f"names starting with '_' are not allowed: {segment!r}"
            raise ExpressionError(message, column=column)
        column += len(segment) + 1


def _check_env(parts: tuple[str, ...]) -> str | None:
    return None if parts == ("name",) else "'env' only has 'env.name'"


def _check_revision(parts: tuple[str, ...]) -> str | None:
    return None if not parts else "'revision' has no fields"


def _check_vars(parts: tuple[str, ...]) -> str | None:
    if len(parts) != 1:
        return "expected vars.<name>"
    if not _NAME.match(parts[0]):
        return f"{parts[0]!r} is not a variable name (letters, digits, '_' and '-')"
    return None


def _check_components(parts: tuple[str, ...]) -> str | None:
    if len(parts) != 3 or parts[1] != "outputs":
        return "expected components.<component>.outputs.<key>"
    if not _DNS_LABEL.match(parts[0]):
        return f"{parts[0]!r} is not a component name (a DNS label)"
    if not _NAME.match(parts[2]):
        return f"{parts[2]!r} is not an output name (letters, digits, '_' and '-')"
    return None


def _check_secrets(parts: tuple[str, ...]) -> str | None:
    if len(parts) != 1:
        return "expected secrets.<NAME>"
    if not SECRET_NAME.match(parts[0]):
        return f"{parts[0]!r} is not a secret name (letters, digits and '_')"
    return None


_ROOT_CHECKERS = {
    "env": _check_env,
    "revision": _check_revision,
    "vars": _check_vars,
    "components": _check_components,
    "secrets": _check_secrets,
}
