"""How much of a commit gitopsd agrees to read: sizes checked before any manifest is read.

A commit is untrusted input: a huge environment file would cost far more time and memory to
parse than to refuse (benchmarks/oversized.py). git knows every file's size without reading it,
so the limits of `gitopsd.yaml` (`limits`, see `model.manifests.Limits`) are checked first and
a file over them is never read: it is a problem at its own path. A commit over the limits of
the whole repository (total bytes, number of files) is refused as one problem, and nothing
but `gitopsd.yaml` is read. `gitopsd.yaml` itself is read only within the default file limit,
since its limits are not known before it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from gitopsd.engine import fieldchecks, loading
from gitopsd.engine.sources import Problem
from gitopsd.model.manifests import Limits

Reader = Callable[[Collection[str]], Mapping[str, bytes]]
SETTINGS = loading.SETTINGS_PATH
_UNITS = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def read_within_limits(
    sizes: Mapping[str, int], read: Reader
) -> tuple[dict[str, bytes], list[Problem]]:
    """The manifests (path -> bytes) of a commit whose files are `sizes` (path -> bytes), as
    far as the limits allow reading them with `read`, and a problem per limit passed."""
    problems: list[Problem] = []
    files = dict(_read_settings(sizes, read, problems))
    limits, settings_lines = _limits(files.get(SETTINGS))
    rest = {path: size for path, size in sizes.items() if path != SETTINGS}
    over_repository = _repository_problem(sizes, limits, settings_lines)
    if over_repository is not None:
        return files, [*problems, over_repository]
    readable = []
    for path, size in sorted(rest.items()):
        if size > limits.max_file_bytes:
            problems.append(_too_large(path, size, limits.max_file_bytes, "limits.max_file_bytes"))
        else:
            readable.append(path)
    files.update(read(readable))
    return files, problems


def _read_settings(
    sizes: Mapping[str, int], read: Reader, problems: list[Problem]
) -> Mapping[str, bytes]:
    size = sizes.get(SETTINGS)
    if size is None:
        return {}
    default = Limits().max_file_bytes
    if size > default:
        problems.append(_too_large(SETTINGS, size, default, "the default, for gitopsd.yaml itself"))
        return {}
    return read([SETTINGS])


def _limits(raw: bytes | None) -> tuple[Limits, Callable[[str], int]]:
    """The limits `gitopsd.yaml` sets (the valid part; its mistakes are reported with the rest
    of the file's), and where each is written in it."""
    if raw is None:
        return Limits(), lambda _: 1
    problems: list[Problem] = []  # reported again when the settings are loaded: dropped here
    parsed = loading.parse_manifest(SETTINGS, raw, problems)
    if parsed is None or not isinstance(parsed[1].get("limits"), dict):
        return Limits(), lambda _: 1
    source, data = parsed
    limits, _ = fieldchecks.check(Limits, source, data["limits"], prefix=("limits",))
    return limits or Limits(), lambda name: source.locate(("limits", name))[1]


def _repository_problem(
    sizes: Mapping[str, int], limits: Limits, line_of: Callable[[str], int]
) -> Problem | None:
    if len(sizes) > limits.max_files:
        message = (
            f"the commit has {len(sizes):,} manifest files, over the limit of "
            f"{limits.max_files:,} (limits.max_files in gitopsd.yaml); none was read"
        )
        return Problem(SETTINGS, line_of("max_files"), message)
    total = sum(sizes.values())
    if total > limits.max_repository_bytes:
        message = (
            f"the manifest files total {total:,} bytes, over the "
            f"{human_size(limits.max_repository_bytes)} limit "
            "(limits.max_repository_bytes in gitopsd.yaml); none was read"
        )
        return Problem(SETTINGS, line_of("max_repository_bytes"), message)
    return None


def _too_large(path: str, size: int, limit: int, setting: str) -> Problem:
    where = setting if setting.startswith("the ") else f"{setting} in gitopsd.yaml"
    message = f"file is {size:,} bytes, over the {human_size(limit)} limit ({where})"
    return Problem(path, 1, message)


def human_size(size: int) -> str:
    """`1 MiB`, `512 KiB`, or `1,500,000 bytes` when no unit divides it."""
    for unit, factor in _UNITS:
        if size % factor == 0:
            return f"{size // factor:,} {unit}"
    return f"{size:,} bytes"
