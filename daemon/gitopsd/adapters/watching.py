"""File-system events on a local repository's refs: the daemon's sub-second commit trigger.

Pipeline: **git** -> load. Polling a local repository every few seconds would make every
commit wait; instead watchdog (inotify on Linux) reports every write to `HEAD`,
`packed-refs` and `refs/heads/`, which is what `git commit`, `merge`, `reset` and `push` to
this repository touch. The callback only says "the refs may have moved"; the daemon reads
the branch head and decides whether anything changed. This is the only module that imports
watchdog.

inotify has limits that are the user's across the whole machine (`fs.inotify.
max_user_instances`, 128 by default, and `max_user_watches`); editors, containers and other
watchers often reach them. Then the refs are looked at every `POLL_INTERVAL` seconds instead
(watchdog's polling observer, a `stat` of a few files), said once in the log: a commit waits
a second, rather than the daemon not starting at all.
"""

from __future__ import annotations

import logging
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
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

# Writes only. Reading a ref opens it too, and inotify reports opens and closes without a
# write: reacting to those, the daemon's own look at the head would wake it again, forever.
WRITES = (FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent)
POLL_INTERVAL = 1.0  # seconds between looks at the refs when inotify cannot watch them
log = logging.getLogger(__name__)


class RefsWatcher:
    """Calls `on_change()` from watchdog's thread whenever a ref file of `git_dir` changes."""

    def __init__(self, git_dir: Path, on_change: Callable[[], None]) -> None:
        self._git_dir = git_dir.resolve()
        self._on_change = on_change
        self._observer: BaseObserver | None = None
        self._watched: tuple[int, int] | None = None  # the folder's device and inode

    def start(self) -> None:
        self._watched = _identity(self._git_dir)
        try:
            self._observer = self._started(Observer())
        except OSError as error:  # an inotify limit reached: see the module docstring
            log.warning(
                "cannot watch the refs of %s with inotify (%s): looking at them every %gs"
                " instead; raise fs.inotify.max_user_instances or max_user_watches to watch them",
                self._git_dir,
                error.strerror or error,
                POLL_INTERVAL,
            )
            self._observer = self._started(PollingObserver(timeout=POLL_INTERVAL))

    def _started(self, observer: BaseObserver) -> BaseObserver:
        """`observer` watching HEAD, packed-refs and refs/, started; stopped again if it
        cannot be, which gives back an inotify instance it took before failing."""
        handler = _RefsHandler(self._git_dir, self._on_change)
        observer.daemon = True
        try:
            observer.schedule(handler, str(self._git_dir), event_filter=list(WRITES))
            refs = self._git_dir / "refs"
            if refs.is_dir():
                observer.schedule(handler, str(refs), recursive=True, event_filter=list(WRITES))
            observer.start()
        except BaseException:
            observer.stop()
            raise
        return observer

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
