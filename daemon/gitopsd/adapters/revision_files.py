"""What loading a commit's manifests found, kept on disk from one process to the next.

Loading a commit (reading its manifests from git, parsing the YAML, validating) takes about
half a second at 1,000 components, and every command is a new process that would pay it again
for the same commit: the `gitopsd drift` a scheduler starts every half hour checks the revision
the last apply loaded. A commit's manifests never change, so the result of a load can be kept:
`<data dir>/cache/revisions/<sha>.<code>.pickle`. `<code>` is a digest of gitopsd's own source
files and of the Python and library versions, so a file written by another build (whose classes
or validation rules may differ) is never read; it ages out instead.

Pickle is safe here for the reason the state database is trusted: the folder is gitopsd's own
(mode 0700, files 0600), written by nothing else. A file that cannot be read back (cut short by
a crash, from a build whose classes moved) is removed, and the caller loads from git.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

import gitopsd

log = logging.getLogger("gitopsd.revisions")
SUFFIX = ".pickle"
# libraries whose upgrade could change what a load finds: their modules are part of the key
LIBRARIES = ("pydantic", "pydantic_core", "yaml")  # top-level: no parent to import


class RevisionFiles:
    """Pickled values by commit sha in one folder, the `keep` most recently written kept."""

    def __init__(self, folder: Path, *, keep: int = 10) -> None:
        self.folder = folder
        self.keep = keep

    def path(self, sha: str) -> Path:
        return self.folder / f"{sha}.{code_digest()}{SUFFIX}"

    def get(self, sha: str) -> Any | None:
        """The value kept for `sha` by this build, or None (never kept, or unreadable)."""
        path = self.path(sha)
        try:
            file = path.open("rb")
        except OSError:
            return None  # never kept here, or the folder is unusable: either way a miss
        with file:
            try:
                return pickle.load(file)  # noqa: S301 - our own folder: see the docstring
            except Exception as error:
                log.warning("ignoring unreadable cached revision %s: %s", path.name, error)
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def put(self, sha: str, value: object) -> None:
        """Keep `value` for `sha`: written whole or not at all; a full disk is not an error."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, scratch = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
            try:
                with os.fdopen(handle, "wb") as file:
                    pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(scratch, self.path(sha))
            except BaseException:
                Path(scratch).unlink(missing_ok=True)
                raise
            self._prune()
        except OSError as error:
            log.warning("cannot keep revision %s on disk: %s", sha[:12], error)

    def _prune(self) -> None:
        """Remove all but the `keep` newest files (other builds' files age out the same way)."""
        kept = sorted(
            (entry for entry in os.scandir(self.folder) if entry.name.endswith(SUFFIX)),
            key=lambda entry: entry.stat().st_mtime_ns,
            reverse=True,
        )
        for entry in kept[self.keep :]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@functools.cache
def code_digest() -> str:
    """16 hex digits naming this build: Python, gitopsd's source files, pydantic and PyYAML.

    File names, sizes and modification times rather than contents: an edit or an upgrade
    changes them, and a stat per file costs far less than reading (or importing) them.
    """
    digest = hashlib.sha256(f"{sys.version}\0{gitopsd.__version__}\0".encode())
    files = _sources(os.path.dirname(gitopsd.__file__))
    files += [origin for origin in map(_origin, LIBRARIES) if origin is not None]
    for path in files:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def _sources(package: str) -> list[str]:
    """Every `.py` file under `package`, sorted. `os.walk` rather than `Path.rglob`: the same
    files in a third of the time (about 100 of them: 3.5 ms down to 1.3 ms at every start,
    before a revision can be read back)."""
    return sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(package)
        for name in names
        if name.endswith(".py")
    )


def _origin(module: str) -> str | None:
    """The file a module would load from, found without importing it."""
    spec = importlib.util.find_spec(module)
    return None if spec is None else spec.origin
