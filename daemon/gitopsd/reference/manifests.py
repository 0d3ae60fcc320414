"""docs/reference/manifests.md: every field of the three kinds of file, from their JSON Schemas.

The schemas are the ones `gitopsd schema --kind` prints, made from the pydantic models that load
manifests, so a field's type, default, description and example here are what gitopsd accepts.
Each object type gets one table; a type two kinds share (RetryPolicy) is described once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from gitopsd.adapters.driver_registry import installed_drivers
from gitopsd.engine.drivers import settings_of
from gitopsd.model import manifests
from gitopsd.model import schema as schemas
from gitopsd.model.fields import DURATION_PATTERN
from gitopsd.reference import markdown


def driver_settings() -> dict[str, type[manifests.DriverSettings]]:
    """The settings model of each installed driver type: the built-in ones where docs are made."""
    return settings_of(installed_drivers())


# kind -> (title, the bundled example shown whole)
KINDS = {
    "component": ("Component", "components/clusters/component.yaml"),
    "environment": ("Environment", "environments/prod.yaml"),
    "config": ("Settings (gitopsd.yaml)", "gitopsd.yaml"),
}
INTRO = (
    "Every field of the three kinds of file in a GitOps repository, with its type, default, "
    "meaning and an example. [docs/manifests.md](../manifests.md) explains how they work "
    "together (rendering, conditions, layers); `gitopsd validate` checks a repository, and the "
    "JSON Schemas in [schemas/](../../schemas) (`gitopsd schema --kind KIND`) let an editor "
    "check a file as you type. Durations are written `90s`, `15m`, `1h30m` or as seconds; a "
    "command is an argv list, or a string split like a shell would (never run by one)."
)


def render(root: Path) -> str:
    lines = markdown.header("Manifest reference", "daemon/gitopsd/reference/manifests.py", INTRO)
    described: set[str] = set()
    for kind, (title, example) in KINDS.items():
        schema = {
            **schemas.kind_schema(kind, driver_settings()),
            "title": schemas.KINDS[kind][0].__name__,
        }
        lines += [f"## {title}", "", schema["description"], ""]
        lines += [f"The bundled example, `{example}`:", ""]
        lines += markdown.fenced((root / example).read_text(), "yaml")
        for name, model in _models(schema):
            if name not in described and "properties" in model:
                described.add(name)
                lines += _model_table(name, model, schema["$defs"])
    return "\n".join(lines).rstrip("\n") + "\n"


def _models(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The kind's root object, then every object type it reaches, in the order first reached."""
    seen: list[str] = []
    queue: list[tuple[str, dict[str, Any]]] = [(schema["title"], schema)]
    while queue:
        name, model = queue.pop(0)
        yield name, model
        for reference in _references(model):
            if reference not in seen:
                seen.append(reference)
                queue.append((reference, schema["$defs"][reference]))


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for child in node.values():
            yield from _references(child)
    elif isinstance(node, list):
        for child in node:
            yield from _references(child)


def _model_table(name: str, model: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    required = set(model.get("required", []))
    defaults = _defaults(name)
    rows = []
    for field, spec in model.get("properties", {}).items():
        default = "required" if field in required else _default(spec, defaults.get(field))
        example = _example(spec, defaults.get(field))
        rows.append((markdown.code(field), type_name(spec), default, _meaning(spec), example))
    lines = [f"### {name}", ""]
    if model.get("description") and name in defs:
        lines += [model["description"], ""]
    columns = ("field", "type", "default", "meaning", "example")
    return [*lines, *markdown.table(columns, rows)]


def _defaults(name: str) -> dict[str, Any]:
    """The model's defaults by field name as written (`from`), its factories called: a JSON
    Schema leaves out what a factory makes."""
    model = getattr(manifests, name)
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return {
        info.alias or field: info.get_default(call_default_factory=True)
        for field, info in model.model_fields.items()
        if not info.is_required()
    }


def _meaning(spec: dict[str, Any]) -> str:
    return str(spec.get("description", ""))


def type_name(spec: dict[str, Any]) -> str:
    """A field's type in words, a link for an object type."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return "any value" if name == "JsonValue" else f"[{name}](#{name.lower()})"
    if "const" in spec:
        return markdown.value(spec["const"])
    if "enum" in spec:
        return " | ".join(markdown.value(choice) for choice in spec["enum"])
    alternatives = spec.get("anyOf") or spec.get("oneOf")
    if alternatives:
        return _union(alternatives)
    return _plain(spec)


def _union(alternatives: list[dict[str, Any]]) -> str:
    kept = [a for a in alternatives if a.get("type") != "null"]
    if _is_duration(kept):
        return "duration"
    if {a.get("type") for a in kept} == {"array", "string"} and len(kept) == 2:
        return "command"
    return " or ".join(type_name(a) for a in kept)


def _plain(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {type_name(spec.get('items', {}))}"
    if kind == "object":
        values = spec.get("additionalProperties")
        return f"mapping of {type_name(values)}" if isinstance(values, dict) else "mapping"
    return {"integer": "integer", "number": "number", "boolean": "boolean"}.get(kind, "string")


def _is_duration(alternatives: list[dict[str, Any]]) -> bool:
    return any(a.get("pattern") == DURATION_PATTERN for a in alternatives)


def _default(spec: dict[str, Any], default: Any) -> str:
    if default is None:
        return "none"
    if isinstance(default, BaseModel):
        return "see " + type_name(spec)
    if _is_duration(spec.get("anyOf", [])):
        return markdown.value(duration(default))
    return markdown.value(to_jsonable_python(default))


def duration(seconds: float) -> str:
    """Seconds as a manifest writes them: 900.0 -> 15m, 5400.0 -> 1h30m."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, rest = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (rest, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def _example(spec: dict[str, Any], default: Any) -> str:
    if spec.get("examples"):
        return markdown.value(spec["examples"][0])
    if "](#" in type_name(spec):
        return "see " + type_name(spec)
    if spec.get("type") == "boolean":
        return markdown.value(not spec.get("default", False))
    if "const" in spec:
        return markdown.value(spec["const"])
    if "enum" in spec:
        return markdown.value(spec["enum"][-1])
    return _default(spec, default)
