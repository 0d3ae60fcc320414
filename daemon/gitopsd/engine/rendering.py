"""`${{ ... }}` placeholders in component inputs (SPEC 3.1): finding them and filling them in.

Pipeline: git -> load -> validate/plan -> execute. Validation walks the loaded inputs with
`references_in` to check every placeholder names something that exists (and, for outputs, a
dependency) before a revision is planned; execution calls `render` per environment and revision,
once the dependencies' outputs are known. Rendering is a pure function of the value and a `Scope`.

Rules:
- a string that is exactly one placeholder (surrounding whitespace ignored) becomes the referenced
  value with its type kept; placeholders inside longer strings are replaced by their string form
  (true/false, null, numbers via str(), lists and mappings as compact JSON with sorted keys);
- `$${{` is an escape for a literal `${{`; the text after it is not a placeholder;
- only the values of mappings and lists are walked, never the keys, and substituted values are
  not rendered again, so an output containing `${{` stays literal;
- the input is never mutated, and containers taken from the scope are copied.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd.engine.references import ExpressionError, Reference, Scope, parse_reference, resolve

OPEN = "${{"
CLOSE = "}}"
ESCAPED_OPEN = "$" + OPEN
MAX_DEPTH = 64

Path = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


class RenderError(ExpressionError):
    """A placeholder that is malformed or cannot be resolved; `path` says where in the value.

    `column` is the 1-based offset in the string at `path`; str() reads like
    `subnets[0].cidr: unknown variable 'cidr' (at column 4)`.
    """

    def __init__(self, message: str, *, path: Path = (), column: int | None = None) -> None:
        super().__init__(message, column=column)
        self.path = path

    def __str__(self) -> str:
        located = super().__str__()
        return f"{format_path(self.path)}: {located}" if self.path else located


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `${{ expression }}` found at `path` (dict keys and list indexes; () for the value)."""

    path: Path
    expression: str


@dataclass(frozen=True, slots=True)
class _Slot:
    """A placeholder inside one string: the text between the braces and where that text starts."""

    raw: str
    column: int

    @property
    def expression(self) -> str:
        return self.raw.strip()

    def reference(self, path: Path) -> Reference:
        try:
            return parse_reference(self.raw)
        except ExpressionError as error:
            column = self.column + (error.column or 1) - 1
            raise RenderError(error.message, path=path, column=column) from error


def format_path(path: Path) -> str:
    """`("subnets", 0, "cidr")` as `subnets[0].cidr`; keys that are not plain names are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def iter_placeholders(value: Any) -> Iterator[Placeholder]:
    """Every placeholder in `value`, depth first; raises RenderError for an unterminated `${{`."""
    for path, slot in _iter_slots(value):
        yield Placeholder(path=path, expression=slot.expression)


def references_in(value: Any) -> Iterator[tuple[Path, Reference]]:
    """Every placeholder in `value` parsed; raises RenderError, with its path, on a bad one."""
    for path, slot in _iter_slots(value):
        yield path, slot.reference(path)


def render(value: Any, scope: Scope) -> Any:
    """A copy of `value` with every placeholder filled in from `scope`; raises RenderError."""
    return _render_value(value, scope, path=())


# --- Walking ------------------------------------------------------------------------------------


def _iter_slots(value: Any) -> Iterator[tuple[Path, _Slot]]:
    for path, text in _iter_strings(value, path=()):
        if OPEN not in text:
            continue
        for piece in _template_at(text, path).pieces:
            if isinstance(piece, _Slot):
                yield path, piece


def _iter_strings(value: Any, *, path: Path) -> Iterator[tuple[Path, str]]:
    _check_depth(path)
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _iter_strings(item, path=(*path, _path_key(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _iter_strings(item, path=(*path, index))


def _render_value(value: Any, scope: Scope, *, path: Path) -> Any:
    _check_depth(path)
    if isinstance(value, str):
        return _render_string(value, scope, path=path)
    if isinstance(value, Mapping):
        return {
            key: _render_value(item, scope, path=(*path, _path_key(key)))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        rendered = [_render_value(item, scope, path=(*path, i)) for i, item in enumerate(value)]
        return rendered if isinstance(value, list) else tuple(rendered)
    return value


def _check_depth(path: Path) -> None:
    # YAML anchors can build self-referencing values; stop long before Python's recursion limit.
    if len(path) > MAX_DEPTH:
        raise RenderError(f"value is nested deeper than {MAX_DEPTH} levels", path=path)


def _path_key(key: Any) -> str | int:
    return key if isinstance(key, str | int) else str(key)


# --- Strings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Template:
    """A string split into literal pieces and placeholders; `whole` is the placeholder that is
    all of it (whitespace aside), whose value keeps its type."""

    pieces: tuple[str | _Slot, ...]
    whole: _Slot | None


@functools.lru_cache(maxsize=1024)
def _template(text: str) -> _Template:
    """`text` split once: the same inputs are rendered again for every run of every
    environment. The last 1,024 strings with placeholders are kept (a few hundred bytes
    each; literals never come here, or every new value a commit brings would stay until
    a thousand more pushed it out); a larger repository splits again what falls out.
    Raises RenderError without a path (the caller knows it)."""
    pieces = _split(text)
    slots = [piece for piece in pieces if isinstance(piece, _Slot)]
    alone = len(slots) == 1 and all(isinstance(p, _Slot) or not p.strip() for p in pieces)
    return _Template(tuple(pieces), slots[0] if alone else None)


def _template_at(text: str, path: Path) -> _Template:
    try:
        return _template(text)
    except RenderError as error:
        raise RenderError(error.message, path=path, column=error.column) from None


def _split(text: str) -> list[str | _Slot]:
    """`text` as literal pieces (escapes already undone) and placeholders, in order."""
    pieces: list[str | _Slot] = []
    position = 0
    while (start := text.find(OPEN, position)) >= 0:
        if start > 0 and text[start - 1] == "$":
            pieces.append(text[position : start - 1] + OPEN)
            position = start + len(OPEN)
            continue
        end = text.find(CLOSE, start + len(OPEN))
        if end < 0:
            message = f"unterminated '{OPEN}' (no '{CLOSE}' after it)"
            raise RenderError(message, column=start + 1)
        pieces.append(text[position:start])
        pieces.append(_Slot(raw=text[start + len(OPEN) : end], column=start + len(OPEN) + 1))
        position = end + len(CLOSE)
    pieces.append(text[position:])
    return [piece for piece in pieces if piece != ""]


def _render_string(text: str, scope: Scope, *, path: Path) -> Any:
    if OPEN not in text:
        return text  # a literal: not split, and not kept in the cache of templates
    template = _template_at(text, path)
    if template.whole is not None:
        return copy.deepcopy(_resolve_slot(template.whole, scope, path=path))
    return "".join(_interpolate(piece, scope, path=path) for piece in template.pieces)


def _interpolate(piece: str | _Slot, scope: Scope, *, path: Path) -> str:
    if isinstance(piece, str):
        return piece
    value = _resolve_slot(piece, scope, path=path)
    try:
        return _stringify(value)
    except (TypeError, ValueError, RecursionError) as error:
        message = f"cannot render {piece.expression} into a string: {error}"
        raise RenderError(message, path=path, column=piece.column) from error


def _resolve_slot(slot: _Slot, scope: Scope, *, path: Path) -> Any:
    reference = slot.reference(path)
    try:
        return resolve(reference, scope)
    except ExpressionError as error:
        column = slot.column + len(slot.raw) - len(slot.raw.lstrip())
        raise RenderError(error.message, path=path, column=column) from error


def _stringify(value: Any) -> str:
    """The string form of a substituted value; JSON for containers, YAML-style scalars."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)
