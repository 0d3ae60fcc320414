"""The README and docs/ are the whole reference: they point only at files in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)  # code is shown, not linked


def documents() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(found) > 5
    return found


def test_no_document_points_at_the_contract_outside_the_repository() -> None:
    for document in documents():
        text = re.sub(r"GITOPSD_PIP_SPEC", "", document.read_text(encoding="utf-8"))
        assert "SPEC" not in text, f"{document.relative_to(ROOT)} names a file users never get"
        assert "shared folder" not in text and "../shared" not in text, document


def test_every_relative_link_names_a_file_that_exists() -> None:
    for document in documents():
        prose = CODE.sub("", document.read_text(encoding="utf-8"))
        for target in LINK.findall(prose):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (document.parent / target).exists(), f"{document.name}: {target}"
