"""Whole numbers a client writes: in a header (a port, `Last-Event-ID`) or a query string.

`str.isdigit` also takes digits `int` refuses ('²', and a header's Latin-1 has it as the
byte 0xB2), so a check by `isdigit` followed by `int` answered 500 to them. Every place that
reads such a number asks `whole_number`, which takes ASCII digits only.
"""

from __future__ import annotations


def whole_number(text: str) -> int | None:
    """`text` as a whole number when it is ASCII digits only (at least one), else None."""
    return int(text) if text.isascii() and text.isdigit() else None
