"""The JSON Schema (draft 2020-12) of the manifest kinds, for editors and CI (`gitopsd schema`).

Generated from the same pydantic models that load manifests, so the schema an editor checks
against cannot drift from what gitopsd accepts. Each kind also has a schema of its own: the
combined one can only say that a manifest matched none of its kinds ("'Environment' was
expected" for a misspelled field of a component), where a kind's own schema names the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gitopsd.model.manifests import Component, Environment, RepoSettings

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE = "https://gitopsd.io/schemas/v1"

# kind -> (model, the files it describes): `gitopsd schema --kind KIND`
KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "component": (Component, "a gitopsd Component (components/NAME/component.yaml)"),
    "environment": (Environment, "a gitopsd Environment (environments/NAME.yaml)"),
    "config": (RepoSettings, "the repository's settings (gitopsd.yaml at its root)"),
}


def manifest_schema() -> dict[str, Any]:
    """One schema that accepts a Component or an Environment; Settings is under `$defs`."""
    _, definitions = models_json_schema(
        [(Component, "validation"), (Environment, "validation"), (RepoSettings, "validation")],
        ref_template="#/$defs/{model}",
    )
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"{SCHEMA_BASE}/manifest.json",
        "title": "gitopsd manifest",
        "description": "A gitopsd Component or Environment (apiVersion gitopsd.io/v1).",
        "oneOf": [{"$ref": "#/$defs/Component"}, {"$ref": "#/$defs/Environment"}],
        "$defs": definitions["$defs"],
    }


def kind_schema(kind: str) -> dict[str, Any]:
    """The schema of one kind, its fields at the top: for a file that can only be that kind."""
    model, files = KINDS[kind]
    schema = model.model_json_schema(ref_template="#/$defs/{model}", mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"{SCHEMA_BASE}/{kind}.json",
        **schema,
        "title": f"gitopsd {kind}",
        "description": f"The schema of {files}, apiVersion gitopsd.io/v1.",
    }
