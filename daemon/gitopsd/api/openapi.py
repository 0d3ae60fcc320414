"""The OpenAPI 3.1 document of the API, served at GET /api/v1/openapi.json.

It is a data file written by hand (`openapi.yaml` next to this module) rather than inferred by
a framework: the routes are plain Starlette, and a test holds the file and `routes.ROUTES` to each
other. Read once, on the first request for it; the daemon never needs it otherwise.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import yaml

PATH = "/api/v1/openapi.json"


@functools.cache
def document() -> dict[str, Any]:
    """The document as a mapping (tests, and the reference docs, read it too)."""
    text = resources.files("gitopsd.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


@functools.cache
def body() -> bytes:
    """The document as the JSON the route answers, encoded once."""
    return json.dumps(document(), ensure_ascii=False).encode("utf-8")
