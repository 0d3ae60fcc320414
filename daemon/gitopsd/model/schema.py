"""The JSON Schema (draft 2020-12) of the manifest kinds, for editors and CI (`gitopsd schema`).

Generated from the same pydantic models that load manifests, so the schema an editor checks
against cannot drift from what gitopsd accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from gitopsd.model.manifests import Component, Environment, RepoSettings

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def manifest_schema() -> dict[str, Any]:
    """One schema that accepts a Component or an Environment; Settings is under `$defs`."""
    _, definitions = models_json_schema(
        [(Component, "validation"), (Environment, "validation"), (RepoSettings, "validation")],
        ref_template="#/$defs/{model}",
    )
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://gitopsd.io/schemas/v1/manifest.json",
        "title": "gitopsd manifest",
        "description": "A gitopsd Component or Environment (apiVersion gitopsd.io/v1).",
        "oneOf": [{"$ref": "#/$defs/Component"}, {"$ref": "#/$defs/Environment"}],
        "$defs": definitions["$defs"],
    }
