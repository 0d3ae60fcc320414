"""Files an operator keeps beside gitopsd (the tokens file, the trust file), read the same way.

Each is UTF-8 YAML that gitopsd refuses to start without: a file it cannot read, or YAML it
cannot parse, is an error naming the file (and the line) raised as the caller's own error
class, so that the tokens file and the trust file say the same things in the same words.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gitopsd.errors import GitopsdError


def read(path: Path, *, what: str, error: type[GitopsdError]) -> str:
    """The file's text; `error` naming `what` it is when it cannot be read or is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{path}: cannot read the {what}: {problem.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: the {what} is not UTF-8") from None


def compose(path: Path, text: str, *, error: type[GitopsdError]) -> yaml.Node | None:
    """The YAML node tree of `text` (for the lines of later problems); `error` with the line
    of invalid YAML."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        line = 1 if mark is None else mark.line + 1
        reason = getattr(problem, "problem", None) or str(problem)
        raise error(f"{path}:{line}: invalid YAML: {reason}") from None
