"""YAML files of one revision, parsed once, with line numbers found only when needed.

The loading step reads every manifest of a commit; most are valid, so parsing uses libyaml's
fast loader and keeps no positions. Only when a problem must be reported does a file get
composed again into nodes to find the line of the offending field (`SourceFile.locate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it

Location = Sequence[str | int]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the repo, printed as `path:line: message`."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class SourceError(Exception):
    """A file that cannot be used at all (not UTF-8, bad YAML, empty, not a mapping)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class SourceFile:
    """A parsed YAML mapping and the text it came from."""

    path: str
    text: str
    data: dict[str, Any] = field(compare=False)

    @cached_property
    def _root(self) -> yaml.Node | None:
        return yaml.compose(self.text, Loader=_Loader)

    def has(self, location: Location) -> bool:
        """Whether the field at `location` is written in this file (not defaulted)."""
        return len(_walk_data(self.data, location)) == len(location)

    def locate(self, location: Location) -> tuple[str, int]:
        """The dotted path of `location` as far as it exists in the file, and its line.

        Locations from pydantic may contain parts that are not in the file (union tags, a
        missing field); those are dropped from the path, except a final missing field.
        """
        kept = _walk_data(self.data, location)
        shown = list(kept)
        if location and len(kept) < len(location) and location[-1] not in kept:
            shown.append(location[-1])
        return _dotted(shown), _line_of(self._root, kept)

    def problem(self, location: Location, message: str) -> Problem:
        """A problem at a field: `path:line: field.path: message`."""
        dotted, line = self.locate(location)
        return Problem(self.path, line, f"{dotted}: {message}" if dotted else message)


def parse(path: str, raw: bytes) -> SourceFile:
    """Decode and parse one manifest; a file that is not a YAML mapping is a SourceError."""
    text = _decode(path, raw)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise SourceError(_yaml_problem(path, error)) from None
    if data is None:
        raise SourceError(Problem(path, 1, "file is empty: expected a YAML mapping"))
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise SourceError(Problem(path, 1, f"expected a YAML mapping at the top, got {kind}"))
    return SourceFile(path, text, data)


def _decode(path: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SourceError(
            Problem(path, line, f"file is not UTF-8 (byte 0x{raw[error.start]:02x})")
        ) from None


def _yaml_problem(path: str, error: yaml.YAMLError) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    detail = f"{context}: {problem}" if context else problem
    return Problem(path, line, f"invalid YAML: {detail}")


def _walk_data(data: Any, location: Location) -> list[str | int]:
    """The parts of `location` that exist in `data`, skipping those that do not."""
    kept: list[str | int] = []
    for part in location:
        if not _has_part(data, part):
            continue
        data = data[part]
        kept.append(part)
    return kept


def _has_part(data: Any, part: str | int) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


def _line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int:
    """The 1-based line of the key (or item) at `path`, or of the nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        child = _child(node, part)
        if child is None:
            break
        key_node, node = child
        line = key_node.start_mark.line + 1
    return line


def _child(node: yaml.Node | None, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and _same_key(key, part):
                return key, value
    if isinstance(node, yaml.SequenceNode) and _has_part(node.value, part):
        item: yaml.Node = node.value[part]
        return item, item
    return None


def _same_key(key: yaml.ScalarNode, part: str | int) -> bool:
    return str(key.value) == str(part)


def _dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
