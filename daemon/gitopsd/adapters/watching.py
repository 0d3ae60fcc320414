"""File-system events on a local repository's refs: the daemon's sub-second commit trigger.

Pipeline: **git** -> load. Polling a local repository every few seconds would make every
commit wait; instead watchdog (inotify on Linux) reports every write to `HEAD`,
`packed-refs` and `refs/heads/`, which is what `git commit`, `merge`, `reset` and `push` to
this repository touch. The callback only says "the refs may have moved"; the daemon reads
the branch head and decides whether anything changed. This is the only module that imports
watchdog.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

# Writes only. Reading a ref opens it too, and inotify reports opens and closes without a
# write: reacting to those, the daemon's own look at the head would wake it again, forever.
WRITES = (FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent)


class RefsWatcher:
    """Calls `on_change()` from watchdog's thread whenever a ref file of `git_dir` changes."""

    def __init__(self, git_dir: Path, on_change: Callable[[], None]) -> None:
        self._git_dir = git_dir.resolve()
        self._on_change = on_change
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._watched: tuple[int, int] | None = None  # the folder's device and inode

    def start(self) -> None:
        self._watched = _identity(self._git_dir)
        handler = _RefsHandler(self._git_dir, self._on_change)
        observer = Observer()
        observer.daemon = True
        observer.schedule(handler, str(self._git_dir), recursive=False, event_filter=list(WRITES))
        refs = self._git_dir / "refs"
        if refs.is_dir():
            observer.schedule(handler, str(refs), recursive=True, event_filter=list(WRITES))
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def follow(self) -> None:
        """Watch the folder again if it was replaced since (the repository copied aside,
        removed and moved back): inotify watches the folder that was, and commits to the
        new one were only seen by the next poll. The daemon calls this after each look at
        the head that worked; one `stat` when nothing changed."""
        now = _identity(self._git_dir)
        if self._observer is not None and now is not None and now != self._watched:
            self.stop()
            self.start()
            self._on_change()  # a commit made meanwhile is not missed


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        found = folder.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


class _RefsHandler(FileSystemEventHandler):
    def __init__(self, git_dir: Path, on_change: Callable[[], None]) -> None:
        self._git_dir = git_dir
        self._on_change = on_change

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory or not isinstance(event, WRITES):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(self._is_ref(path) for path in paths if path):
            self._on_change()

    def _is_ref(self, path: str | bytes) -> bool:
        text = path.decode() if isinstance(path, bytes) else path
        try:
            relative = Path(text).resolve().relative_to(self._git_dir).as_posix()
        except ValueError:
            return False
        if relative.endswith(".lock"):
            return False  # git writes `<ref>.lock`, then renames it over the ref: wait for that
        return relative in ("HEAD", "packed-refs") or relative.startswith("refs/heads/")
