"""The one way gitopsd reads JSON it did not write (an API body, a GitHub delivery, a driver's
outputs file): bounded in depth and in the length of its numbers.

Python's json recurses once per nested array or object and gives up with RecursionError near
the interpreter's recursion limit (about a thousand levels), and refuses integers over 4,300
digits with a ValueError of its own; both reached the client as a 500. Request bodies and
GitHub deliveries are shallow and their numbers short, so a number over `MAX_DIGITS` digits is
refused as the parser meets it, a body the parser cannot descend is refused when it gives up
(early, having built little), and a parsed value nested deeper than `MAX_DEPTH` is refused
after one walk. A key given twice in one object is refused too: json keeps the last value,
so `{"action": "plan", "action": "destroy"}` would destroy while a log or a proxy that reads
the first one sees a plan. A string that is half a character (a lone surrogate escape) is
refused: it is not text. So are the numbers JSON has not got: `NaN` and `Infinity`, which
json reads, and a number too large for a float (`1e999`, read as infinity), which a
dependent's inputs file would then hold as `Infinity`, not JSON. Bytes must be UTF-8 without a
byte-order mark (RFC 8259, section 8.1): json would detect UTF-16 and UTF-32 and skip a UTF-8
mark, so the daemon acted on a body a strict reader before it (a proxy, an audit log) cannot
read as the same request. Every hostile body becomes
one `JsonLimitError` (422 for the API), in time and memory linear in its size, which the
caller caps (`LimitBody`, the outputs file's 1 MiB).
"""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from gitopsd.errors import JsonLimitError

MAX_DEPTH = 64
MAX_DIGITS = 100
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
NOT_UTF8 = "must be UTF-8 JSON without a byte-order mark"
# longest first: UTF-32-LE's mark starts with UTF-16-LE's
_MARKS = {
    codecs.BOM_UTF32_LE: "a UTF-32 byte-order mark",
    codecs.BOM_UTF32_BE: "a UTF-32 byte-order mark",
    codecs.BOM_UTF8: "a UTF-8 byte-order mark",
    codecs.BOM_UTF16_LE: "a UTF-16 byte-order mark",
    codecs.BOM_UTF16_BE: "a UTF-16 byte-order mark",
}


# not in gitopsd.errors: private to `parse`, which turns both into a JsonLimitError
class _NumberTooLongError(ValueError):
    pass


class _DuplicateKeyError(ValueError):
    pass


def parse(raw: bytes | str) -> Any:
    """The JSON value of `raw`; JsonLimitError when it is invalid, too deep or too long."""
    text = raw if isinstance(raw, str) else _utf8_text(raw)
    try:
        value = json.loads(
            text,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except (_NumberTooLongError, _DuplicateKeyError) as error:
        raise JsonLimitError(str(error)) from None
    except RecursionError:
        raise JsonLimitError(TOO_DEEP) from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise JsonLimitError(f"invalid JSON at {where}: {error.msg}") from None
    except ValueError as error:  # any other limit of the parser's (none is known)
        raise JsonLimitError(f"invalid JSON: {error}") from None
    if nesting_depth(value) > MAX_DEPTH:
        raise JsonLimitError(TOO_DEEP)
    if (bad := _not_text(value)) is not None:
        raise JsonLimitError(f"invalid JSON: a string holds a lone surrogate ({bad!a}), not text")
    return value


def _utf8_text(raw: bytes) -> str:
    """`raw` decoded as UTF-8, refusing what json.loads would read by guessing: a byte-order
    mark, UTF-16 or UTF-32 (a zero byte among the first four: JSON text has none), bytes
    that are not UTF-8 (its encoded surrogates included)."""
    mark = next((name for bom, name in _MARKS.items() if raw.startswith(bom)), None)
    if mark is not None:
        raise JsonLimitError(f"{NOT_UTF8} (this one starts with {mark})")
    if b"\x00" in raw[:4]:
        raise JsonLimitError(f"{NOT_UTF8} (this one looks like UTF-16 or UTF-32)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        where = f"byte {raw[error.start]:#04x} at offset {error.start}"
        raise JsonLimitError(f"{NOT_UTF8} ({where} is not UTF-8)") from None


def nesting_depth(value: Any) -> int:
    """How deep arrays and objects nest in `value` (`[]` is 1), walked without recursion;
    the walk stops once past MAX_DEPTH."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending and deepest <= MAX_DEPTH:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _not_text(value: Any) -> str | None:
    """A key or string of `value` that is not text (JSON's `\\ud800` escape of half a
    character: json reads it, but it cannot be encoded, stored or even put in an error
    answer, which made a 500 of a component name), walked without recursion."""
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _NumberTooLongError(f"a number of {digits} digits (at most {MAX_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _NumberTooLongError(f"a number of {len(text)} characters (at most {MAX_DIGITS})")
    number = float(text)
    if not math.isfinite(number):
        raise _NumberTooLongError(f"the number {text} is out of range (no JSON reader keeps it)")
    return number


def _no_constant(name: str) -> Any:
    raise _NumberTooLongError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object of `pairs`, refusing a key given twice rather than keeping the last."""
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _DuplicateKeyError(f"duplicate key {key!r}")
        value[key] = item
    return value
