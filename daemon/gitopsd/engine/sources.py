"""Manifest files of one revision once parsed, and the problems found in them.

The loading step reads every manifest of a commit; most are valid, so parsing (`yaml_text`)
keeps no positions. Only when a problem must be reported does a file get composed again into
nodes to find the line of the offending field (`SourceFile.locate`); its values are not built
again (a 99,000-item list took 0.9 s to build, and its nodes only 0.46 s to compose).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    problem to locate is composed again into nodes (`_Located`), and only the last one so
    composed is kept, per thread, for its next problems, until the pass that reports them ends
    (`release`): each such file kept its values and node tree for as long as the revision,
    about 150 times its size (31 MB for a 198 KB file).
    """

    path: str
    text: str

    def has(self, location: Location) -> bool:
        """Whether the field at `location` is written in this file (not defaulted)."""
        return not _Located.of(self).walk(location)[1]

    def locate(self, location: Location) -> tuple[str, int]:
        """The dotted path of `location` as far as it exists in the file, and its line.

        Locations from pydantic may contain union tags and `[key]` markers, which are not in
        the file and are skipped; a final missing field (a required one) is still named.
        """
        kept, missing, line = _Located.of(self).walk(location)
        shown = kept + missing if len(missing) == 1 else kept
        return _dotted(shown), line

    def problem(self, location: Location, message: str) -> Problem:
        """A problem at a field: `path:line: field.path: message`."""
        dotted, line = self.locate(location)
        return Problem(self.path, line, f"{dotted}: {message}" if dotted else message)


Keys = dict[str, tuple[yaml.Node, yaml.Node]]
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class _Located:
    """A file composed again into nodes to locate its problems, and for each mapping looked
    into, its keys by name, so that a file with 30,000 problems is not searched key by key
    30,000 times (10,000 took 5.2 s)."""

    source: SourceFile
    root: yaml.Node | None
    _keys: dict[int, Keys] = field(default_factory=dict)

    _last = threading.local()  # `located`: the last file this thread composed

    @classmethod
    def of(cls, source: SourceFile) -> _Located:
        last: _Located | None = getattr(cls._last, "located", None)
        if last is not None and last.source is source:
            return last
        cls._last.located = None  # the last file's nodes go before the next file's are made
        located = cls._last.located = cls(source, compose(source.text))
        return located

    @classmethod
    def forget(cls) -> None:
        cls._last.located = None

    def walk(self, location: Location) -> tuple[list[str | int], list[str | int], int]:
        """The parts of `location` found in the file, those from the first missing one on,
        and the line of the last one found (of the file's top when none is). Pydantic's
        `[key]` markers and union tags (the value of a `type` field) are skipped."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        kept: list[str | int] = []
        parts = list(location)
        for index, part in enumerate(parts):
            if part in _MARKERS or self._tag(node) == part:
                continue
            child = self._child(node, part)
            if child is None:
                return kept, [p for p in parts[index:] if p not in _MARKERS], line
            key, node = child
            line = key.start_mark.line + 1
            kept.append(part)
        return kept, [], line

    def _tag(self, node: yaml.Node | None) -> str | None:
        found = self._child(node, "type") if isinstance(node, yaml.MappingNode) else None
        value = found[1] if found is not None else None
        return str(value.value) if isinstance(value, yaml.ScalarNode) else None

    def _child(self, node: yaml.Node | None, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            return _child(node, part)
        return self._keys_of(node).get(str(part))

    def _keys_of(self, node: yaml.MappingNode) -> Keys:
        """The mapping's keys by name: its own (the first of a name, as `_child`), then
        those merged in with `<<` (the mapping's own win, as when its values are built)."""
        keys = self._keys.get(id(node))
        if keys is not None:
            return keys
        keys = self._keys[id(node)] = {}
        merged: list[yaml.Node] = []
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag == MERGE_TAG:
                merged += value.value if isinstance(value, yaml.SequenceNode) else [value]
            elif isinstance(key, yaml.ScalarNode):
                keys.setdefault(str(key.value), (key, value))
        for source in merged:
            if isinstance(source, yaml.MappingNode):
                for name, found in self._keys_of(source).items():
                    keys.setdefault(name, found)
        return keys


def release() -> None:
    """Let go of the file this thread last parsed to locate problems: a pass that reported
    its problems (loading, validation) ends with this, and keeps none of the file."""
    _Located.forget()


def describe_type(value: Any) -> str:
    """A user's name for a YAML value's type: "a list", "a string", "a number"..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {str: "a string", list: "a list", dict: "a mapping", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


_MARKERS = frozenset({"[key]"})


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
