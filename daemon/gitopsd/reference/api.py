"""docs/reference/api.md: the OpenAPI document (gitopsd/api/openapi.yaml) as a page to read.

The document is what the daemon serves at /api/v1/openapi.json, and a test holds it to the
app's routes; this renders every route with its parameters, body, responses and role, then the
object types they use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gitopsd.api import openapi
from gitopsd.reference import markdown

METHODS = ("get", "post", "put", "patch", "delete")
INTRO = (
    "Every route of the HTTP API of `gitopsd serve`. The daemon serves the same as an OpenAPI "
    "3.1 document at `GET /api/v1/openapi.json` (no token needed), for clients and tools."
)


def render() -> str:
    document = openapi.document()
    lines = markdown.header("HTTP API reference", "daemon/gitopsd/api/openapi.yaml", INTRO)
    lines += [document["info"]["description"].rstrip("\n"), ""]
    lines += [
        "## Routes",
        "",
        *markdown.table(("method", "path", "role", "does"), _index(document)),
    ]
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                lines += _operation(path, item, method, document)
    lines += ["## Objects", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += [f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"], ""]
        lines += list(_properties(schema))
    return "\n".join(lines).rstrip("\n") + "\n"


def _index(document: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                link = f"[`{path}`](#{_anchor(method, path)})"
                yield method.upper(), link, _role(operation), operation["summary"]


def _anchor(method: str, path: str) -> str:
    """GitHub's anchor of the heading `METHOD path`: lowercase, punctuation dropped."""
    heading = f"{method} {path}".lower()
    return "".join(c for c in heading.replace(" ", "-") if c.isalnum() or c in "-_")


def _role(operation: dict[str, Any]) -> str:
    if "x-role" in operation:
        return str(operation["x-role"])
    parameters = {p.get("name") for p in operation.get("parameters", [])}
    return "signature" if "X-Hub-Signature-256" in parameters else "none"


def _operation(path: str, item: dict[str, Any], method: str, document: dict[str, Any]) -> list[str]:
    operation = item[method]
    lines = [f"## {method.upper()} {path}", "", operation["summary"] + ".", ""]
    if operation.get("description"):
        lines += [operation["description"].rstrip("\n"), ""]
    lines += [f"Role: {_role(operation)}.", ""]
    parameters = [
        _resolve(p, document)
        for p in [*item.get("parameters", []), *operation.get("parameters", [])]
    ]
    if parameters:
        rows = [
            (
                markdown.code(p["name"]),
                p["in"],
                _type(p.get("schema", {})),
                _parameter_meaning(p),
            )
            for p in parameters
        ]
        lines += markdown.table(("parameter", "in", "type", "meaning"), rows)
    body = operation.get("requestBody")
    if body:
        schema = body["content"]["application/json"]["schema"]
        needed = "required" if body.get("required") else "optional"
        lines += [f"Body ({needed}): {_type(schema)}.", ""]
    responses = [
        _response(status, _resolve(r, document))
        for status, r in sorted(operation["responses"].items())
    ]
    return [*lines, *markdown.table(("status", "when", "body"), responses)]


def _response(status: str, response: dict[str, Any]) -> tuple[str, str, str]:
    content = response.get("content", {})
    body = " or ".join(f"{_type(c['schema'])} ({kind})" for kind, c in content.items())
    return status, response["description"].strip(), body


def _parameter_meaning(parameter: dict[str, Any]) -> str:
    """Its description, then its bounds and default, as the schema gives them."""
    schema = parameter.get("schema", {})
    notes = [parameter.get("description", "")]
    if "minimum" in schema and "maximum" in schema:
        notes.append(f"{schema['minimum']} to {schema['maximum']}")
    if "default" in schema:
        notes.append(f"default {schema['default']}")
    if parameter.get("required") and parameter["in"] != "path":
        notes.append("required")
    return "; ".join(note for note in notes if note)


def _resolve(node: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` within the document, followed; anything else as it is."""
    reference = node.get("$ref")
    if reference is None:
        return node
    found: Any = document
    for part in reference.removeprefix("#/").split("/"):
        found = found[part]
    resolved: dict[str, Any] = found
    return resolved


def _properties(schema: dict[str, Any]) -> Iterator[str]:
    parts = schema.get("allOf", [schema])
    rows = []
    for part in parts:
        if "$ref" in part:
            yield f"All of {_type(part)}, and:"
            yield ""
            continue
        required = set(part.get("required", []))
        for name, spec in part.get("properties", {}).items():
            mark = "yes" if name in required else ""
            rows.append((markdown.code(name), _type(spec), mark, spec.get("description", "")))
    if rows:
        yield from markdown.table(("field", "type", "required", "meaning"), rows)


def _type(schema: dict[str, Any]) -> str:
    """A schema in a few words; an object type as a link to its table."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in schema:
        return markdown.code(str(schema["const"]))
    if "enum" in schema:
        return " | ".join(markdown.code(str(choice)) for choice in schema["enum"])
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            return " or ".join(_type(part) for part in schema[key])
    if schema.get("properties") and schema.get("type") == "object":
        fields = ", ".join(markdown.code(name) for name in schema["properties"])
        return f"object of {fields}"
    kinds = schema.get("type", "any")
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    if "array" in names and "items" in schema:
        names = [f"list of {_type(schema['items'])}" if n == "array" else n for n in names]
    return " or ".join(names)
