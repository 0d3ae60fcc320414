"""Every generated file of the repository, by its path: what `make docs` writes and the
reference test compares with the committed copies."""

from __future__ import annotations

import json
from pathlib import Path

from gitopsd.model import schema
from gitopsd.reference import api, commands, manifests, metrics


def documents(root: Path) -> dict[str, str]:
    """Relative path -> the text it should have; `root` is the checkout (for its example)."""
    files = {
        "docs/reference/manifests.md": manifests.render(root),
        "docs/reference/cli.md": commands.render(),
        "docs/reference/api.md": api.render(),
        "docs/reference/metrics.md": metrics.render(),
    }
    for kind in schema.KINDS:
        files[f"schemas/{kind}.json"] = (
            json.dumps(schema.kind_schema(kind, manifests.driver_settings()), indent=2) + "\n"
        )
    return files


def write(root: Path) -> list[str]:
    """Write every document that differs; the paths written."""
    written = []
    for relative, text in documents(root).items():
        path = root / relative
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(relative)
    return written
