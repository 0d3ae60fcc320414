"""The validation corpus: one bad repository per YAML file, with every problem it must give.

A case file holds `description` (one line), `files` (path -> text; the repo is exactly these
files), optional `binary_files` (path -> base64, for bytes that are not UTF-8), `expect` (every
problem as `path:line: message-prefix`) and, for a known validator bug, `xfail` (the bug, in
one line). An expected entry matches a problem when path and line are equal and the problem's
message starts with the expected message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitopsd.engine.sources import Problem
from tests.gitrepos import commit_files

CORPUS = Path(__file__).parent / "corpus"
CASE_KEYS = {"description", "files", "binary_files", "expect", "xfail"}
PROBLEM_LINE = re.compile(r"(?P<path>[^:\n]+):(?P<line>[0-9]+): (?P<message>.+)", re.DOTALL)


@dataclass(frozen=True)
class Expected:
    """One expected problem: exact path and line, and the start of the message."""

    path: str
    line: int
    message: str

    @classmethod
    def parse(cls, text: str) -> Expected:
        match = PROBLEM_LINE.fullmatch(text)
        if match is None:
            raise ValueError(f"expected entry is not 'path:line: message': {text!r}")
        return cls(match["path"], int(match["line"]), match["message"])

    def matches(self, problem: Problem) -> bool:
        return (
            problem.path == self.path
            and problem.line == self.line
            and problem.message.startswith(self.message)
        )

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    files: dict[str, str | bytes]
    expect: list[Expected]
    xfail: str | None = None

    def commit(self, repo: Path) -> str:
        """Commit exactly this case's files into a new git repository at `repo`."""
        return commit_files(repo, self.files, message=self.name)


def load_case(path: Path) -> Case:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: a case file is a mapping")
    unknown = set(data) - CASE_KEYS
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {sorted(unknown)}")
    files: dict[str, str | bytes] = dict(data.get("files") or {})
    for name, encoded in (data.get("binary_files") or {}).items():
        files[name] = base64.b64decode(encoded, validate=True)
    xfail = data.get("xfail")
    return Case(
        name=path.stem,
        description=str(data.get("description", "")),
        files=files,
        expect=[Expected.parse(text) for text in data.get("expect") or []],
        xfail=str(xfail) if xfail is not None else None,
    )


def all_cases() -> list[Case]:
    return [load_case(path) for path in sorted(CORPUS.glob("*.yaml"))]


def unmatched(expected: Sequence[Expected], actual: Sequence[Problem]) -> list[Expected]:
    """Expected entries left without a problem of their own (a maximum bipartite matching,
    so an entry whose prefix also fits another entry's problem cannot steal it)."""
    owner: dict[int, int] = {}  # index of a problem -> index of the entry it is given to

    def assign(entry: int, seen: set[int]) -> bool:
        for index, problem in enumerate(actual):
            if index in seen or not expected[entry].matches(problem):
                continue
            seen.add(index)
            if index not in owner or assign(owner[index], seen):
                owner[index] = entry
                return True
        return False

    left = [entry for entry in range(len(expected)) if not assign(entry, set())]
    return [expected[entry] for entry in left]
