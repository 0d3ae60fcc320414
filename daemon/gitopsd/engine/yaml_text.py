"""The YAML side of loading: parse a manifest's text into plain data, refusing what no
manifest can hold (and dump data as YAML for `diff`, so PyYAML's dumper stays here too).

Parsing uses libyaml's fast loader and keeps no positions; only when a problem must be
reported is a file composed again into nodes to find the line of the offending field
(`sources.line_of`).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from gitopsd.engine.sources import (
    BASE_LOADER,
    Problem,
    SourceError,
    SourceFile,
    compose,
    describe_type,
)

MAX_VALUES = 100_000  # per file, counting every visit, so alias bombs stay bounded
MAX_DEPTH = 64  # mappings and lists in one another: deeper overflowed the validators' stack
MAX_INTEGER = 2**63 - 1  # a signed 64-bit integer: what drivers' JSON readers all hold
_TAG = "tag:yaml.org,2002:"
_KEY_TAGS = {_TAG + "str", _TAG + "merge"}  # a text key, or `<<` (merge another mapping in)
_READ_AS = {
    _TAG + "int": "a number",
    _TAG + "float": "a number",
    _TAG + "bool": "a boolean",
    _TAG + "null": "null",
    _TAG + "timestamp": "a date",
    _TAG + "seq": "a list",
    _TAG + "map": "a mapping",
}


# not in gitopsd.errors: the YAML loader's; reported as a problem of the file
class ValueRefused(yaml.constructor.ConstructorError):
    """Valid YAML that no manifest can hold (a list as a key, an infinite number): reported
    as the problem it is, not as "invalid YAML"."""


class _Loader(BASE_LOADER):  # type: ignore[misc]
    """The safe loader, refusing duplicate keys (YAML would silently keep only the last),
    keys that are not text, and numbers that JSON readers cannot hold; text that another
    file of the same load has too is that file's object (`shared`)."""

    shared: dict[str, str] | None = None

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        """Thousands of components write the same layer, input names and commands: the
        models keep the strings they are given, so each is held once per load, not once
        per file (benchmarks/README.md)."""
        value: str = super().construct_yaml_str(node)
        return value if self.shared is None else self.shared.setdefault(value, value)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        for key_node, _ in node.value:
            if key_node.tag not in _KEY_TAGS:
                raise ValueRefused(None, None, _key_message(key_node), key_node.start_mark)
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

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """Integers of 64 bits at most: a longer one is refused before Python converts it
        (past 4,300 digits, converting raises; far below, JSON readers lose digits)."""
        if len(node.value) <= 30:
            value: int = super().construct_yaml_int(node)
            if -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
                return value
        shown = (
            node.value
            if len(node.value) <= 30
            else f"{node.value[:20]}... ({len(node.value)} characters)"
        )
        message = f"integer {shown} does not fit in 64 bits: quote it to keep it text"
        raise ValueRefused(None, None, message, node.start_mark)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        """Finite numbers only: JSON has no infinity or NaN to hand a driver."""
        value: float = super().construct_yaml_float(node)
        if math.isfinite(value):
            return value
        shown = node.value if len(node.value) <= 30 else node.value[:20] + "..."
        message = f"YAML reads {shown} as {value}, which JSON cannot hold: quote it to keep it text"
        raise ValueRefused(None, None, message, node.start_mark)


_Loader.add_constructor(_TAG + "str", _Loader.construct_yaml_str)
_Loader.add_constructor(_TAG + "int", _Loader.construct_yaml_int)
_Loader.add_constructor(_TAG + "float", _Loader.construct_yaml_float)


def parse(
    path: str, raw: bytes, *, shared: dict[str, str] | None = None
) -> tuple[SourceFile, dict[str, Any]]:
    """Decode and parse one manifest: the file, and the mapping it holds (which the caller
    builds its models from and drops); a file that is not a YAML mapping is a SourceError.
    `shared`: the text values of the files parsed before in the same load, reused."""
    text = _decode(path, raw)
    try:
        data = _load(text, shared)
    except ValueRefused as error:
        line = error.problem_mark.line + 1 if error.problem_mark else 1
        raise SourceError(Problem(path, line, str(error.problem))) from None
    except yaml.YAMLError as error:
        raise SourceError(_yaml_problem(path, text, error)) from None
    if data is None:
        raise SourceError(Problem(path, 1, "file is empty: expected a YAML mapping"))
    if not isinstance(data, dict):
        message = f"expected a YAML mapping at the top, got {describe_type(data)}"
        raise SourceError(Problem(path, _first_node_line(text), message))
    if "*" in text and _count_values(data, budget=MAX_VALUES) > MAX_VALUES:
        message = f"file expands to more than {MAX_VALUES} values (YAML aliases nested too deep)"
        raise SourceError(Problem(path, _expansion_line(text, MAX_VALUES), message))
    if _depth_over(data, MAX_DEPTH):
        message = f"values nested more than {MAX_DEPTH} deep (mappings and lists in one another)"
        raise SourceError(Problem(path, _deep_line(compose(text), MAX_DEPTH), message))
    return SourceFile(path, text), data


def _load(text: str, shared: dict[str, str] | None) -> Any:
    """`yaml.load` with the safe `_Loader`, sharing text values through `shared`."""
    loader = _Loader(text)
    loader.shared = shared
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def values(text: str) -> dict[str, Any]:
    """The mapping of a manifest's text that `parse` accepted before, parsed the same way."""
    data: dict[str, Any] = _load(text, None)
    return data


def dump(value: Any) -> str:
    """`value` (JSON data) as YAML with sorted keys, for people to read (`diff`): mappings in
    block style, one value a line (so a changed input is one changed line), a list of plain
    values on one line (a driver command as `[python3, x.py]`), long lines never folded."""
    text: str = yaml.dump(
        value,
        Dumper=_ReadableDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
    return text


class _ReadableDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The safe dumper, with a list of plain values written in flow style."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_ReadableDumper.add_representer(list, _represent_list)


def _key_message(node: yaml.Node) -> str:
    """Why a key is refused: every key of a manifest is a name, and JSON keys are text."""
    read_as = _READ_AS.get(node.tag, "not text")
    if isinstance(node, yaml.ScalarNode):
        return f"mapping key {node.value}: YAML reads it as {read_as}; keys must be text (quote it)"
    return f"mapping key is {read_as}: keys must be text"


def _depth_over(value: Any, limit: int) -> bool:
    """Whether mappings and lists nest deeper than `limit`: a walk level by level, of the
    mappings and lists only (no recursion, and a few milliseconds at 1,000 components)."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        if not level:
            return False
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
    return bool(level)


def _deep_line(root: yaml.Node | None, limit: int) -> int:
    """The line of the first value nested deeper than `limit`."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if depth >= limit:
                return int(node.start_mark.line) + 1
            values = (
                [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else node.value
            )
            stack.extend((child, depth + 1) for child in reversed(values))
    return 1


def _decode(path: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SourceError(
            Problem(path, line, f"file is not UTF-8 (byte 0x{raw[error.start]:02x})")
        ) from None


def _yaml_problem(path: str, text: str, error: yaml.YAMLError) -> Problem:
    if isinstance(error, yaml.reader.ReaderError) and isinstance(error.character, int):
        # a character YAML refuses (a NUL, a control character): the reader knows only its
        # position in the text, not its line
        line = text.count("\n", 0, error.position) + 1
        return Problem(
            path, line, f"invalid YAML: character #x{error.character:04x} is not allowed here"
        )
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
    node = compose(text)
    return node.start_mark.line + 1 if node is not None else 1


def _expansion_line(text: str, budget: int) -> int:
    """The line of the alias at which the file's values, each alias counted as what it
    repeats, pass `budget`: where the expansion is (a composed alias is its anchor's node,
    whose line is the anchor's, so the events are counted); 1 if none does."""
    counted: dict[str, int] = {}  # anchor -> the values its node holds
    open_anchors: list[tuple[str | None, int]] = []  # containers open: anchor, count at start
    total = 0
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, yaml.AliasEvent):
            total += counted.get(event.anchor or "", 1)
            if total > budget and event.start_mark is not None:
                return int(event.start_mark.line) + 1
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                counted[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            total += 1
            open_anchors.append((event.anchor, total))
        elif isinstance(event, yaml.CollectionEndEvent) and open_anchors:
            anchor, start = open_anchors.pop()
            if anchor is not None:
                counted[anchor] = total - start + 1
    return 1


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
