"""Manifest files of one revision once parsed, and the problems found in them.

The loading step reads every manifest of a commit; most are valid, so parsing (`yaml_text`)
keeps no positions. Only when a problem must be reported does a file get composed again into
nodes to find the line of the offending field (`SourceFile.locate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import yaml

Location = Sequence[str | int]
BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the repo, printed as `path:line: message`."""

    path: str
    line: int
    message: str

    def __post_init__(self) -> None:
        # text for people, for the terminal, JSON, logs and the state store, which take UTF-8
        # only: a path from git named in bytes that are not UTF-8 (adapters/git_output keeps
        # them as surrogate escapes) is written with those bytes as `\xe9`
        object.__setattr__(self, "path", printable(self.path))
        object.__setattr__(self, "message", printable(self.message))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def printable(text: str) -> str:
    """`text` with the bytes a surrogate escape stands for written as `\\xNN` (any other lone
    surrogate as `\\uNNNN`): text that can be encoded as UTF-8, and still names the file."""
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


# not in gitopsd.errors: the pure core's; loading turns it into a located problem of `validate`
class SourceError(Exception):
    """A file that cannot be used at all (not UTF-8, bad YAML, empty, not a mapping)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class SourceFile:
    """A manifest's path and text, kept beside the models built from it to report problems.

    The values parsed from the text are not kept: the models hold them already, and keeping
    both held every manifest twice (as much memory again as the models). Only a file with a
    problem to locate is parsed again, on first use (`data`).
    """

    path: str
    text: str

    @cached_property
    def data(self) -> Any:
        """What the text parses to: the mapping it was loaded from, for finding fields in.
        The plain safe loader is enough: the text passed loading's stricter one before."""
        return yaml.load(self.text, Loader=BASE_LOADER)  # noqa: S506 - a safe loader

    @cached_property
    def _root(self) -> yaml.Node | None:
        return compose(self.text)

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
        return _dotted(shown), line_of(self._root, kept)

    def problem(self, location: Location, message: str) -> Problem:
        """A problem at a field: `path:line: field.path: message`."""
        dotted, line = self.locate(location)
        return Problem(self.path, line, f"{dotted}: {message}" if dotted else message)


def describe_type(value: Any) -> str:
    """A user's name for a YAML value's type: "a list", "a string", "a number"..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {str: "a string", list: "a list", dict: "a mapping", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


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
        if not has_part(data, part):
            return kept, [p for p in parts[index:] if p not in _MARKERS]
        data = data[part]
        kept.append(part)
    return kept, []


def has_part(data: Any, part: str | int) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


def _dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def compose(text: str) -> yaml.Node | None:
    """The file's node tree, with positions (for `line_of`)."""
    return yaml.compose(text, Loader=BASE_LOADER)


def line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int:
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
    if isinstance(node, yaml.SequenceNode) and has_part(node.value, part):
        item: yaml.Node = node.value[part]
        return item, item
    return None
