"""The refs watcher: a commit wakes it; reading the refs (as the daemon does) does not."""

from __future__ import annotations

import shutil
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


def test_a_repository_folder_replaced_is_watched_again_once_followed(
    repo_path: Path, commit: CommitFiles
) -> None:
    """Copied aside, removed and moved back: the watch was on the folder that was, and
    commits to the new one waited for the next poll (15 s and more)."""
    commit({"a.txt": "1"})
    woken = threading.Event()
    watcher = RefsWatcher(repo_path / ".git", woken.set)
    watcher.start()
    try:
        aside = repo_path.with_name("aside")
        shutil.copytree(repo_path, aside, symlinks=True)
        shutil.rmtree(repo_path)
        aside.rename(repo_path)
        watcher.follow()  # the daemon does after each look at the head that worked
        assert woken.wait(5), "watching anew looks once: a commit made meanwhile"
        woken.clear()
        watcher.follow()  # the same folder: nothing to do
        time.sleep(0.3)
        assert not woken.is_set()
        commit({"a.txt": "2"})
        assert woken.wait(5), "a commit to the new folder must wake the watcher"
    finally:
        watcher.stop()
