"""Find the installed driver types: the `gitopsd.drivers` entry points.

Pipeline: start-up -> this -> load (each type's settings validate `driver:` blocks) and
execute (`adapters.drivers.DriverRouter` hands each call to its type's runner). gitopsd's own
`command` and `github-actions` types are entry points of its own distribution (pyproject.toml),
found exactly as a third-party package's are; an entry point names an object implementing
`engine.drivers.DriverType`.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import cast

from gitopsd.engine.drivers import DriverType
from gitopsd.errors import DriverPluginError

GROUP = "gitopsd.drivers"


@functools.cache
def installed_drivers() -> dict[str, DriverType]:
    """Every installed driver type by name, loaded once per process."""
    found: dict[str, DriverType] = {}
    for point in sorted(entry_points(group=GROUP), key=lambda point: point.name):
        kind = _load(point)
        if point.name in found:
            raise DriverPluginError(
                f"driver plugin {point.value!r}: two installed plugins name the type "
                f"{point.name!r}; uninstall one"
            )
        found[point.name] = kind
    return found


def _load(point: EntryPoint) -> DriverType:
    """The driver type an entry point names, or a one-line error saying which plugin failed
    and why (a plugin's bug must not become gitopsd's traceback)."""
    try:
        kind = point.load()
    except Exception as error:  # any import-time failure of third-party code
        raise DriverPluginError(
            f"driver plugin {point.name!r} ({point.value}) cannot be loaded: "
            f"{type(error).__name__}: {error}"
        ) from None
    if getattr(kind, "name", None) != point.name or not callable(getattr(kind, "runner", None)):
        raise DriverPluginError(
            f"driver plugin {point.name!r} ({point.value}) is not a driver type: it needs a "
            f"`name` equal to {point.name!r}, a `settings` model and a `runner` method"
        )
    return cast(DriverType, kind)
