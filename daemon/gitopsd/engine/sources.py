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

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it
MAX_VALUES = 100_000  # per file, counting every visit, so alias bombs stay bounded

Location = Sequence[str | int]


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, refusing duplicate keys: YAML would silently keep only the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        if len({key.value for key, _ in node.value}) == len(node.value):
            return super().construct_mapping(node, deep=deep)  # the usual case, checked fast
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen[key_node.value] = key_node
        return super().construct_mapping(node, deep=deep)


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
        return yaml.compose(self.text, Loader=_BaseLoader)

    def has(self, location: Location) -> bool:
        """Whether the field at `location` is written in this file (not defaulted)."""
        return not _walk_data(self.data, location)[1]

    def locate(self, location: Location) -> tuple[str, int]:
        """The dotted path of `location` as far as it exists in the file, and its line.

        Locations from pydantic may contain union tags and `[key]` markers, which are not in
        the file and are skipped; a final missing field (a required one) is still named.
        """
        kept, missing = _walk_data(self.data, location)
        shown = kept + missing if len(missing) == 1 else kept
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
        raise SourceError(_yaml_problem(path, text, error)) from None
    if data is None:
        raise SourceError(Problem(path, 1, "file is empty: expected a YAML mapping"))
    if not isinstance(data, dict):
        message = f"expected a YAML mapping at the top, got {describe_type(data)}"
        raise SourceError(Problem(path, _first_node_line(text), message))
    if "*" in text and _count_values(data, budget=MAX_VALUES) > MAX_VALUES:
        message = f"file expands to more than {MAX_VALUES} values (YAML aliases nested too deep)"
        raise SourceError(Problem(path, 1, message))
    return SourceFile(path, text, data)


def describe_type(value: Any) -> str:
    """A user's name for a YAML value's type: "a list", "a string", "a number"..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {str: "a string", list: "a list", dict: "a mapping", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _decode(path: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SourceError(
            Problem(path, line, f"file is not UTF-8 (byte 0x{raw[error.start]:02x})")
        ) from None


def _yaml_problem(path: str, text: str, error: yaml.YAMLError) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    detail = f"{context}: {problem}" if context else problem
    started = getattr(error, "context_mark", None)
    if started is not None and mark is not None and started.line != mark.line:
        detail += f" (started at line {started.line + 1})"
    lines = text.splitlines()
    if 0 < line <= len(lines) and "\t" in lines[line - 1]:
        detail += " (a tab: YAML indents with spaces only)"
    return Problem(path, line, f"invalid YAML: {detail}")


def _first_node_line(text: str) -> int:
    node = yaml.compose(text, Loader=_BaseLoader)
    return node.start_mark.line + 1 if node is not None else 1


def _count_values(value: Any, *, budget: int) -> int:
    """Values in `value`, counting shared ones per use; stops counting past `budget`."""
    count = 0
    stack = [value]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


_MARKERS = frozenset({"[key]"})


def _walk_data(data: Any, location: Location) -> tuple[list[str | int], list[str | int]]:
    """The parts of `location` found in `data`, and those from the first missing one on.

    Pydantic's `[key]` markers and union tags (the value of a `type` field) are skipped.
    """
    kept: list[str | int] = []
    parts = list(location)
    for index, part in enumerate(parts):
        if part in _MARKERS or (isinstance(data, dict) and data.get("type") == part):
            continue
        if not _has_part(data, part):
            return kept, [p for p in parts[index:] if p not in _MARKERS]
        data = data[part]
        kept.append(part)
    return kept, []


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
            if isinstance(key, yaml.ScalarNode) and str(key.value) == str(part):
                return key, value
    if isinstance(node, yaml.SequenceNode) and _has_part(node.value, part):
        item: yaml.Node = node.value[part]
        return item, item
    return None


def _dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
