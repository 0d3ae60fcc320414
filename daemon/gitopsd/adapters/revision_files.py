"""Files kept by commit sha in one folder of the data folder, from one process to the next.

The revision cache (`runtime/runs/revisions.py`) keeps here what loading a commit found, as JSON
lines; this module only names, writes, reads and prunes the files. A file is named
`<sha>.<tag>.json`, the tag naming what wrote it (gitopsd's version and the layout of the
content), so a file another version wrote is never found by this one; it ages out instead.

The folder is gitopsd's own (mode 0700, files 0600). A file is written whole or not at all
(a scratch file renamed into place), so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Generator, Iterable
from pathlib import Path

log = logging.getLogger("gitopsd.revisions")
SUFFIX = ".json"


class RevisionFiles:
    """Text by commit sha in one folder, the `keep` most recently written files kept."""

    def __init__(self, folder: Path, *, tag: str, keep: int = 10) -> None:
        self.folder = folder
        self.tag = tag
        self.keep = keep

    def path(self, sha: str) -> Path:
        return self.folder / f"{sha}.{self.tag}{SUFFIX}"

    def lines(self, sha: str) -> Generator[str, None, None]:
        """The lines of the text kept for `sha` under this tag (without their newline; empty
        ones left out), read as they are asked for: a revision is megabytes, and its reader
        uses a line at a time. None at all if it was never kept here or the folder is
        unusable; a damaged file's lines end before the damage (its reader finds fewer
        than it says it holds)."""
        try:
            with self.path(sha).open(encoding="utf-8") as file:
                for line in file:
                    if line := line.rstrip("\n"):
                        yield line
        except (OSError, UnicodeDecodeError):
            return

    def latest_lines(self) -> Generator[str, None, None]:
        """The lines of the file this tag wrote last (by modification time; none if there is
        none): a writer of the next revision copies from it what the two have in common."""
        newest = self._newest()
        if newest is not None:
            yield from self.lines(newest)

    def _newest(self) -> str | None:
        try:
            mine = [entry for entry in os.scandir(self.folder) if self._is_mine(entry.name)]
            newest = max(mine, key=lambda entry: entry.stat().st_mtime_ns, default=None)
        except OSError:
            return None
        return None if newest is None else newest.name.partition(".")[0]

    def _is_mine(self, name: str) -> bool:
        return name.endswith(f".{self.tag}{SUFFIX}") and not name.startswith(".")

    def put(self, sha: str, text: Iterable[str]) -> None:
        """Keep `text` for `sha`, written part by part as the parts are made (a writer need
        not hold all of it at once), and whole or not at all: a part that cannot be made
        raises here and nothing is kept. A full disk is not an error."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, scratch = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.writelines(text)
                os.replace(scratch, self.path(sha))
            except BaseException:
                Path(scratch).unlink(missing_ok=True)
                raise
            self._prune()
        except OSError as error:
            log.warning("cannot keep revision %s on disk: %s", sha[:12], error)

    def _prune(self) -> None:
        """Remove all but the `keep` newest files, whatever wrote them (other versions' files
        age out the same way); a scratch file (named `.*`) may be another process's write."""
        kept = sorted(
            (entry for entry in os.scandir(self.folder) if not entry.name.startswith(".")),
            key=lambda entry: entry.stat().st_mtime_ns,
            reverse=True,
        )
        for entry in kept[self.keep :]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
