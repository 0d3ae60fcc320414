"""Text, DOT, Mermaid and JSON views of an environment's dependency graph (`gitopsd graph`)."""

from __future__ import annotations

import json

from gitopsd.engine.selection import Selection


def as_json(selection: Selection) -> str:
    components = [
        {
            "name": c.manifest.name,
            "layer": c.manifest.metadata.layer,
            "depends_on": list(c.manifest.spec.depends_on),
        }
        for c in selection.components
    ]
    return json.dumps(
        {"environment": selection.environment.manifest.name, "components": components}, indent=2
    )


def as_text(selection: Selection) -> str:
    lines = [f"environment {selection.environment.manifest.name}: apply order"]
    for index, component in enumerate(selection.components, start=1):
        manifest = component.manifest
        needs = ", ".join(manifest.spec.depends_on) or "-"
        lines.append(f"{index:>4}. {manifest.name}  [{manifest.metadata.layer}]  after: {needs}")
    return "\n".join(lines)


def as_dot(selection: Selection) -> str:
    name = selection.environment.manifest.name
    lines = [f'digraph "{name}" {{', "  rankdir=LR;"]
    for component in selection.components:
        manifest = component.manifest
        lines.append(f'  "{manifest.name}" [label="{manifest.name}\\n{manifest.metadata.layer}"];')
        lines.extend(f'  "{dep}" -> "{manifest.name}";' for dep in manifest.spec.depends_on)
    lines.append("}")
    return "\n".join(lines)


def as_mermaid(selection: Selection) -> str:
    lines = ["flowchart LR"]
    for component in selection.components:
        manifest = component.manifest
        lines.append(
            f'  {_mermaid_id(manifest.name)}["{manifest.name}<br/>{manifest.metadata.layer}"]'
        )
        lines.extend(
            f"  {_mermaid_id(dep)} --> {_mermaid_id(manifest.name)}"
            for dep in manifest.spec.depends_on
        )
    return "\n".join(lines)


def _mermaid_id(name: str) -> str:
    """Mermaid ids cannot contain '-' safely everywhere, and `end` is a keyword."""
    return "c_" + name.replace("-", "_")


RENDERERS = {"text": as_text, "dot": as_dot, "mermaid": as_mermaid, "json": as_json}
