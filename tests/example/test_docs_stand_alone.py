"""The README and docs/ are the whole reference: they point only at files in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)  # code is shown, not linked


def documents() -> list[Path]:
    """Every Markdown file of the repository (README, docs/, components/, CHANGELOG...)."""
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = sorted({ROOT / "README.md", *(ROOT / name for name in listed)})
    assert len(found) > 5 and ROOT / "docs/reference/api.md" in found
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
