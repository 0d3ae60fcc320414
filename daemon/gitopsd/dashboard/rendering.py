"""Turning a page's data into HTML: the Jinja2 templates shipped in this package.

Autoescaping is on for every template, so a component name or a commit subject is text,
never markup. The filters here are the few ways the pages show times and revisions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from gitopsd.model.state import escape_unsafe

SHORT_SHA = 12


def templates() -> Environment:
    """The dashboard's template environment (templates/ of this package)."""
    environment = Environment(
        loader=PackageLoader("gitopsd.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["short"] = short
    environment.filters["age"] = age
    environment.filters["when"] = when
    environment.filters["shown"] = shown
    environment.filters["escape_unsafe"] = escape_unsafe  # reasons, messages, errors
    return environment


def shown(value: Any) -> str:
    """An output's value as JSON (`{"vnet": "net-dev"}`), a string as itself."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def short(revision: str | None) -> str:
    """A revision as people read it: its first 12 hex digits, or a dash for none."""
    return revision[:SHORT_SHA] if revision else "—"


def when(stamp: str | None) -> str:
    """An ISO 8601 time as `2026-12-05 06:35 UTC`; a dash for none."""
    moment = _parse(stamp)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def age(stamp: str | None, now: datetime | None = None) -> str:
    """How long ago an ISO 8601 time was, coarsely: `5 min ago`, `3 h ago`, `2 d ago`."""
    moment = _parse(stamp)
    if moment is None:
        return "—"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def context_defaults() -> dict[str, Any]:
    """What every template may use besides its own data."""
    return {"now": datetime.now(UTC)}
