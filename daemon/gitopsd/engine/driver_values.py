"""Values that could never reach a command driver, found where they are written.

A command driver gets each input as an environment variable, `GITOPSD_INPUT_<NAME>=value`,
and its `env` setting as variables too (docs/drivers.md). No environment variable can hold a
NUL character (C strings), and Linux refuses to start a program with one `NAME=value` of
128 KiB or more (MAX_ARG_STRLEN): the apply would fail with "Argument list too long". A value
written in a manifest (an input, a variable, an override, a driver's `env`) that breaks either
rule is therefore a validation problem at its line. Values only known when rendered (another
component's outputs) are checked again before the driver starts, and fail that step naming
the input (`adapters.driver_environment`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.sources import Problem, SourceFile
from gitopsd.model.manifests import CommandDriver

MAX_VARIABLE_BYTES = 128 * 1024  # one `NAME=value` with its terminating NUL (MAX_ARG_STRLEN)
# what a component's literal inputs and driver env may take together: half of the usual ARG_MAX
# (2 MiB), the rest left for the inherited environment, the arguments and rendered values
ENVIRONMENT_BUDGET = 1024**2
INPUT_PREFIX = "GITOPSD_INPUT_"  # input names are ASCII: the variable is as long as this + name
LONGEST_NAME = INPUT_PREFIX + "X" * 64  # what a variable's value may be passed under
NUL_MESSAGE = "a NUL character, which no environment variable can hold"
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # as drivers get it


def check_driver_values(repository: Repository) -> Iterator[Problem]:
    """Every literal value of `repository` no environment variable could carry."""
    for component in repository.components.values():
        yield from _component_values(component)
    for environment in repository.environments.values():
        spec = environment.manifest.spec
        yield from _check_all(environment.source, ("spec", "variables"), spec.variables)
        for name, values in spec.overrides.items():
            yield from _check_all(environment.source, ("spec", "overrides", name), values)


def _component_values(component: ComponentEntry) -> Iterator[Problem]:
    spec = component.manifest.spec
    if not isinstance(spec.driver, CommandDriver):
        return  # a workflow's inputs go to GitHub, not to an environment
    for name, value in spec.inputs.items():  # INPUT_PREFIX + name: the variable's length
        yield from _check(component.source, ("spec", "inputs", name), INPUT_PREFIX + name, value)
    for name, text in spec.driver.env.items():
        yield from _check(component.source, ("spec", "driver", "env", name), name, text)
    yield from _check_total(component, spec.driver.env)


def _check_total(component: ComponentEntry, env: Mapping[str, str]) -> Iterator[Problem]:
    """The component's literal inputs and driver env together, as `NAME=value` strings:
    each may fit in a variable and all of them still not in one environment (the kernel's
    ARG_MAX, about 2 MiB for arguments and environment together). Over a budget that leaves
    room for the inherited environment and rendered values, it is a problem at `inputs`."""
    inputs = component.manifest.spec.inputs
    sizes = {name: _size(value) for name, value in inputs.items()}
    total = sum(len(INPUT_PREFIX + name) + size + 2 for name, size in sizes.items())
    total += sum(len(name) + _size(text) + 2 for name, text in env.items())
    if total <= ENVIRONMENT_BUDGET:
        return
    largest = sorted(((size, name) for name, size in sizes.items()), reverse=True)[:3]
    named = ", ".join(f"{name!r} ({size:,} bytes)" for size, name in largest)
    message = (
        f"the inputs and the driver's env come to {total:,} bytes as environment variables, "
        f"over the {ENVIRONMENT_BUDGET // 1024**2} MiB a driver is given; largest: {named}"
    )
    yield component.source.problem(("spec", "inputs"), message)


def _size(value: Any) -> int:
    """Bytes of a value as its variable carries it (text as it is, anything else as JSON)."""
    text = value if isinstance(value, str) else _COMPACT_JSON.encode(value)
    return len(text.encode("utf-8", "surrogatepass"))


def _check_all(
    source: SourceFile, location: tuple[str, ...], values: Mapping[str, Any]
) -> Iterator[Problem]:
    """Variables become inputs of any name: measured as under a long input name."""
    for name, value in values.items():
        yield from _check(source, (*location, name), LONGEST_NAME, value)


def _check(
    source: SourceFile, location: tuple[str, ...], variable: str, value: Any
) -> Iterator[Problem]:
    """Text goes as it is, lists and mappings as compact JSON (which escapes NUL); numbers,
    booleans and null are short whatever they are."""
    if isinstance(value, str):
        if "\0" in value:
            yield source.problem(location, NUL_MESSAGE)
            return
        if (len(variable) + len(value)) * 4 + 2 <= MAX_VARIABLE_BYTES:
            return  # short enough in any encoding (UTF-8: at most 4 bytes a character)
        text = value
    elif isinstance(value, dict | list):
        text = _COMPACT_JSON.encode(value)
    else:
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if len(variable) + size + 2 > MAX_VARIABLE_BYTES:
        message = (
            f"value of {size:,} bytes: one environment variable holds less than "
            f"{MAX_VARIABLE_BYTES // 1024} KiB, so no driver could be given it"
        )
        yield source.problem(location, message)
