"""The contents of recently read git blobs, by object id, within a byte budget.

A blob's id is the digest of its content, so what was read once is right for ever. A new head
usually changes a few manifests of thousands: reading only the blobs not read before spares
`git cat-file` opening and inflating every unchanged one again, which was a good part of the
time from a commit to its first driver. Only the blobs of the last commit read are kept
(`keep_only`): a blob another commit's file had is not asked for by the next head, whose
file changed, so keeping it would grow the cache by a blob with every commit of a long
life. The budget keeps the memory bounded (the least recently used blobs go first); a
repository whose manifests exceed it reads them all, as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_BUDGET = 8 * 1024 * 1024


class BlobCache:
    """`known(ids)` what is kept of those blobs; `keep(contents)` after reading others."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self._budget = budget
        self._size = 0
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, ids: Iterable[str]) -> dict[str, bytes]:
        """The contents kept of `ids` (each becomes the most recently used)."""
        found = {}
        with self._lock:
            for blob_id in ids:
                content = self._blobs.get(blob_id)
                if content is not None:
                    self._blobs.move_to_end(blob_id)
                    found[blob_id] = content
        return found

    def keep(self, contents: dict[str, bytes]) -> None:
        """Remember blobs just read, dropping the least recently used over the budget."""
        with self._lock:
            for blob_id, content in contents.items():
                if blob_id in self._blobs or len(content) > self._budget:
                    continue
                self._blobs[blob_id] = content
                self._size += len(content)
            while self._size > self._budget:
                _, dropped = self._blobs.popitem(last=False)
                self._size -= len(dropped)

    def keep_only(self, ids: Iterable[str]) -> None:
        """Forget every blob but `ids` (those of the commit just read)."""
        wanted = set(ids)
        with self._lock:
            for blob_id in [b for b in self._blobs if b not in wanted]:
                self._size -= len(self._blobs.pop(blob_id))
