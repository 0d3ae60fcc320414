"""The JSON Schema (draft 2020-12) of the manifest kinds, for editors and CI (`gitopsd schema`).

Generated from the same pydantic models that load manifests, so the schema an editor checks
against cannot drift from what gitopsd accepts; a component's `driver:` is one of the settings
models of the installed driver types, told apart by `type`. Each kind also has a schema of its
own: the combined one can only say that a manifest matched none of its kinds ("'Environment'
was expected" for a misspelled field of a component), where a kind's own schema names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gitopsd.model.manifests import Component, DriverSettings, Environment, RepoSettings

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE = "https://gitopsd.io/schemas/v1"

# kind -> (model, the files it describes): `gitopsd schema --kind KIND`
KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "component": (Component, "a gitopsd Component (components/NAME/component.yaml)"),
    "environment": (Environment, "a gitopsd Environment (environments/NAME.yaml)"),
    "config": (RepoSettings, "the repository's settings (gitopsd.yaml at its root)"),
}


def manifest_schema(driver_types: Mapping[str, type[DriverSettings]]) -> dict[str, Any]:
    """One schema that accepts a Component or an Environment; Settings is under `$defs`.
    `driver_types`: the settings model of each installed driver type, by name."""
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"{SCHEMA_BASE}/manifest.json",
        "title": "gitopsd manifest",
        "description": "A gitopsd Component or Environment (apiVersion gitopsd.io/v1).",
        "oneOf": [{"$ref": "#/$defs/Component"}, {"$ref": "#/$defs/Environment"}],
        "$defs": _definitions([Component, Environment, RepoSettings], driver_types),
    }


def kind_schema(kind: str, driver_types: Mapping[str, type[DriverSettings]]) -> dict[str, Any]:
    """The schema of one kind, its fields at the top: for a file that can only be that kind."""
    model, files = KINDS[kind]
    defs = _definitions([model], driver_types)
    top = defs.pop(model.__name__)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"{SCHEMA_BASE}/{kind}.json",
        **top,
        "title": f"gitopsd {kind}",
        "description": f"The schema of {files}, apiVersion gitopsd.io/v1.",
        "$defs": defs,
    }


def _definitions(
    kinds: list[type[BaseModel]], driver_types: Mapping[str, type[DriverSettings]]
) -> dict[str, Any]:
    """The `$defs` of `kinds`, a component's `driver:` being one of `driver_types`' settings."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(kind, "validation") for kind in kinds]
    if Component in kinds:
        models += [(settings, "validation") for settings in driver_types.values()]
    _, definitions = models_json_schema(models, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = definitions["$defs"]
    defs.pop("DriverSettings", None)
    if "ComponentSpec" in defs:
        defs["ComponentSpec"]["properties"]["driver"] = {
            "oneOf": [{"$ref": f"#/$defs/{s.__name__}"} for s in driver_types.values()],
            "description": "the driver, by type: " + ", ".join(sorted(driver_types)),
        }
    return defs
