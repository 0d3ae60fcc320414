"""Check one manifest's fields against its model, and keep what is valid for the next checks.

Pydantic reports what is wrong in its own words and locations; this module turns each error
into a `Problem` at the file and line a user edits, in a user's words. A manifest with a bad
field is then "salvaged": the bad fields are dropped and the rest validated again, so the
cross-file checks still see its name and references. Otherwise one typo in a component would
also be reported as "unknown component" by everything that depends on it.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gitopsd.engine.sources import Location, Problem, SourceFile, describe_type

Model = TypeVar("Model", bound=BaseModel)
SALVAGE_ROUNDS = 4

EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def check(
    model: type[Model],
    source: SourceFile,
    data: Any,
    *,
    prefix: tuple[str | int, ...] = (),
    report: Callable[[Location], bool] = lambda _: True,
    context: Mapping[str, Any] | None = None,
) -> tuple[Model | None, list[Problem]]:
    """Validate `data` (found at `prefix` in `source`); return the model and the problems.

    With problems, the model returned is the salvaged one (bad fields dropped), or None when
    nothing usable is left. `report` filters which error locations become problems; `context`
    is pydantic's validation context (the installed driver types, `manifests.DRIVER_TYPES`).
    """
    try:
        return model.model_validate(data, context=context), []
    except ValidationError as error:
        problems = [
            _problem(source, (*prefix, *item["loc"]), item)
            for item in error.errors(include_url=False)
            if report((*prefix, *item["loc"]))
        ]
        return _salvage(model, data, error, context), problems


def _salvage(
    model: type[Model], data: Any, error: ValidationError, context: Mapping[str, Any] | None
) -> Model | None:
    data = copy.deepcopy(data)
    for _ in range(SALVAGE_ROUNDS):
        if not isinstance(data, dict) or not _drop_all(data, error):
            return None
        try:
            return model.model_validate(data, context=context)
        except ValidationError as again:
            error = again
    return None


def _drop_all(data: dict[str, Any], error: ValidationError) -> bool:
    """Delete what each error points at (or the container of a missing field)."""
    paths = [_existing_path(data, item["loc"]) for item in error.errors()]
    if any(not path for path in paths):
        return False  # the document itself is unusable
    for path in sorted(set(map(tuple, paths)), key=_sort_key, reverse=True):
        container: Any = data
        for part in path[:-1]:
            container = container[part]
        del container[path[-1]]
    return True


def _sort_key(path: tuple[str | int, ...]) -> tuple[str, ...]:
    """Delete list items from the back, so earlier indexes stay valid."""
    return tuple(f"{part:010d}" if isinstance(part, int) else part for part in path)


def _existing_path(data: Any, loc: tuple[str | int, ...]) -> list[str | int]:
    """The part of `loc` present in `data`: the bad value itself, or a missing field's parent."""
    path: list[str | int] = []
    for part in loc:
        if isinstance(data, dict) and (part == "[key]" or data.get("type") == part):
            continue  # pydantic's markers for a bad key and for a union member
        if not _has_part(data, part):
            return path
        data = data[part]
        path.append(part)
    return path


def _has_part(data: Any, part: str | int) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


def _problem(source: SourceFile, location: tuple[str | int, ...], item: Any) -> Problem:
    kind = item["type"]
    context = item.get("ctx") or {}
    if kind == "union_tag_not_found":
        expected = context.get("expected_tags", "")
        return source.problem((*location, "type"), f"required field is missing (one of {expected})")
    if kind == "union_tag_invalid":
        message = (
            f"unknown type {context.get('tag')!r}; expected one of {context.get('expected_tags')}"
        )
        return source.problem((*location, "type"), message)
    return source.problem(location, _message(kind, item))


def describe(item: Any) -> str:
    """One of pydantic's errors (an item of `ValidationError.errors()`) in a user's words,
    without its location: for settings read from flags and the environment too."""
    return _message(item["type"], item)


def _message(kind: str, item: Any) -> str:
    value = item.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in ("byte_size", "byte_size_unit"):
        return f"expected a size in bytes, such as 1048576, 512KiB or 2MiB{_shown(value, 'got ')}"
    if kind in EXPECTED:
        return f"expected {EXPECTED[kind]}, got {describe_type(value)}{_shown(value, '')}"
    if kind == "invalid-json-value" and isinstance(value, datetime.date):
        return f"YAML reads {value.isoformat()} as a date; quote it to keep it text"
    if kind == "invalid-json-value":
        return f"expected a JSON value (text, number, boolean, list or mapping), got {value!r}"
    message = str(item["msg"]).removeprefix("Value error, ")
    return message if kind == "value_error" else message + _shown(value, "got ")


def _shown(value: Any, lead: str) -> str:
    """The offending value as YAML spells it, when it is short enough to help."""
    if isinstance(value, bool):
        return f" ({lead}{str(value).lower()})"
    is_scalar = isinstance(value, str | int | float)
    return f" ({lead}{value!r})" if is_scalar and len(repr(value)) < 60 else ""
