"""The refs watcher: a commit wakes it; reading the refs (as the daemon does) does not."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gitopsd.adapters.gitrepo import GitSource
from gitopsd.adapters.watching import RefsWatcher
from tests.conftest import CommitFiles


def test_a_commit_wakes_the_watcher_and_reading_the_head_does_not(
    repo_path: Path, commit: CommitFiles, tmp_path: Path
) -> None:
    commit({"a.txt": "1"})
    woken = threading.Event()
    count = [0]

    def on_change() -> None:
        count[0] += 1
        woken.set()

    watcher = RefsWatcher(repo_path / ".git", on_change)
    watcher.start()
    try:
        source = GitSource.open(str(repo_path), branch=None, data_dir=tmp_path / "data")
        for _ in range(20):  # opens and reads HEAD, refs/heads/main, packed-refs
            source.head()
            (repo_path / ".git" / "HEAD").read_text()
        time.sleep(0.5)
        assert count[0] == 0, "reading the refs must not look like a change"
        commit({"a.txt": "2"})
        assert woken.wait(5), "a commit must wake the watcher"
        source.close()
    finally:
        watcher.stop()
