"""The one way the API reads a JSON body: bounded in depth and in the length of its numbers.

Python's json recurses once per nested array or object and raises RecursionError near a
thousand levels, and refuses integers over 4,300 digits with a ValueError of its own; both
reached the client as a 500. Request bodies and GitHub deliveries are shallow and their
numbers short, so anything deeper than `MAX_DEPTH` is refused by a linear scan before the
parser runs, and a longer number as the parser meets it: every hostile body becomes one
`JsonLimitError` (422) in time linear in its size, which `LimitBody` already caps.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gitopsd.errors import GitopsdError

MAX_DEPTH = 64
MAX_DIGITS = 100
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: no backtracking
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonLimitError(GitopsdError):
    """A body that is not JSON, or JSON beyond the limits; the message says which."""


class _NumberTooLongError(ValueError):
    pass


def parse(raw: bytes) -> Any:
    """The JSON value of `raw`; JsonLimitError when it is invalid, too deep or too long."""
    if nesting_depth(raw) > MAX_DEPTH:
        raise JsonLimitError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw, parse_int=_bounded_int)
    except _NumberTooLongError as error:
        raise JsonLimitError(str(error)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise JsonLimitError(f"invalid JSON: {error}") from None
    except (RecursionError, ValueError) as error:  # the limits above should make these moot
        raise JsonLimitError(f"invalid JSON: {error}") from None


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in `raw` (brackets inside strings do not count):
    over MAX_DEPTH when they nest deeper, else at most MAX_DEPTH; quick on a hostile body."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    remaining = brackets
    for _ in range(MAX_DEPTH):  # each round drops one level (the innermost pairs) at C speed
        remaining = _INNERMOST.sub(b"", remaining)
    if not remaining:
        return MAX_DEPTH  # at most that (the exact figure is not needed)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
    return deepest


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _NumberTooLongError(f"a number of {digits} digits (at most {MAX_DIGITS})")
    return int(text)
