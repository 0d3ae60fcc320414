"""The JSON Schema (draft 2020-12) of the manifest kinds, for editors and CI (`gitopsd schema`).

Generated from the same pydantic models that load manifests, so the schema an editor checks
against cannot drift from what gitopsd accepts; a component's `driver:` is one of the settings
models of the installed driver types, told apart by `type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gitopsd.model.manifests import Component, DriverSettings, Environment, RepoSettings

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def manifest_schema(driver_types: Mapping[str, type[DriverSettings]]) -> dict[str, Any]:
    """One schema that accepts a Component or an Environment; Settings is under `$defs`.
    `driver_types`: the settings model of each installed driver type, by name."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (Component, "validation"),
        (Environment, "validation"),
        (RepoSettings, "validation"),
    ]
    models += [(settings, "validation") for settings in driver_types.values()]
    _, definitions = models_json_schema(models, ref_template="#/$defs/{model}")
    defs = definitions["$defs"]
    defs.pop("DriverSettings", None)
    defs["ComponentSpec"]["properties"]["driver"] = {
        "oneOf": [{"$ref": f"#/$defs/{s.__name__}"} for s in driver_types.values()],
        "description": "the driver, by type: " + ", ".join(sorted(driver_types)),
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://gitopsd.io/schemas/v1/manifest.json",
        "title": "gitopsd manifest",
        "description": "A gitopsd Component or Environment (apiVersion gitopsd.io/v1).",
        "oneOf": [{"$ref": "#/$defs/Component"}, {"$ref": "#/$defs/Environment"}],
        "$defs": defs,
    }
