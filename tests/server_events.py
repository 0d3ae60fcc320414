"""Server-Sent Events as a browser's EventSource reads them, for the tests of the log stream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def events(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """(id, event, data) of each event of a Server-Sent Events stream, as EventSource reads it."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield fields["id"][-1], fields["event"][-1], "\n".join(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
