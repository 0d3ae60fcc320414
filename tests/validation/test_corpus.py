"""Every corpus case, loaded in-process from a real git commit, gives exactly its problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.runtime.runs import revisions
from tests.validation.cases import CORPUS, Case, all_cases, unmatched

CASES = all_cases()
MINIMUM_CASES = 40


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_case_reports_exactly_its_problems(case: Case, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sha = case.commit(repo)
    source = revisions.open_source(str(repo), branch=None, data_dir=tmp_path / "data")
    loaded = revisions.load(source)

    assert loaded.revision == sha
    shown = "\n".join(f"  {problem}" for problem in loaded.problems) or "  (none)"
    missing = unmatched(case.expect, loaded.problems)
    assert not missing and len(loaded.problems) == len(case.expect), (
        f"{case.name}: {case.description}\n"
        f"expected {len(case.expect)} problems, got {len(loaded.problems)}:\n{shown}\n"
        "not found:\n" + "\n".join(f"  {entry}" for entry in missing)
    )
    assert not loaded.is_valid


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= MINIMUM_CASES, f"only {len(CASES)} cases in {CORPUS}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_is_well_formed(case: Case) -> None:
    assert case.expect, f"{case.name}: `expect` is empty"
    assert case.files, f"{case.name}: no files"
    assert case.description and "\n" not in case.description.strip()
    for entry in case.expect:
        assert entry.path in case.files, f"{case.name}: {entry.path} is not one of its files"
        assert entry.line >= 1
