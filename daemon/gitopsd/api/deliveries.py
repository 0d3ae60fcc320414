"""The GitHub deliveries seen lately, so that a replayed one is answered without acting.

GitHub names each delivery (`X-GitHub-Delivery`) and keeps the name when it redelivers; the
signature covers the body, not the name, so a captured delivery verifies again whenever it is
sent. The route answers a name seen in the last `keep` (a day) with 200 and does nothing.
Names are kept in memory, the newest `capacity` of them: a replay can at worst make the
daemon fetch the remote once more, which is what any poll does, so forgetting them on a
restart costs one needless fetch, not a wrong action.

GitHub's names are UUIDs, so a name is at most `MAX_ID` letters, digits and dashes (else 400:
a megabyte of name would otherwise be remembered 10,000 times) and is compared in lower case.
A delivery without a name is acted on and not remembered: GitHub always sends one, and a
fetch is all a delivery can ask for.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import datetime, timedelta

from gitopsd.engine.ports import Clock
from gitopsd.errors import InvalidDeliveryIdError

HEADER = "X-GitHub-Delivery"
MAX_ID = 100
_ID = re.compile(f"[A-Za-z0-9-]{{1,{MAX_ID}}}")


def delivery_id(header: str | None) -> str | None:
    """The delivery's name in lower case; None when it has none (missing or empty)."""
    if header is None or not header.strip():
        return None
    if not _ID.fullmatch(header.strip()):
        raise InvalidDeliveryIdError(
            f"{HEADER} must be at most {MAX_ID} letters, digits and dashes (GitHub sends a UUID)"
        )
    return header.strip().lower()


class RecentDeliveries:
    """Delivery ids seen in the last `keep`, at most the newest `capacity` of them."""

    def __init__(
        self, clock: Clock, *, keep: timedelta = timedelta(days=1), capacity: int = 10_000
    ) -> None:
        self._clock = clock
        self._keep = keep
        self._capacity = capacity
        self._seen: OrderedDict[str, datetime] = OrderedDict()  # oldest first

    def claim(self, delivery_id: str) -> bool:
        """Remember `delivery_id` as acted on now, unless it was within `keep` (False then:
        a replay). Checked and noted in one step of the event loop, so that of copies sent
        at once only the first acts (the oldest is forgotten past `capacity`)."""
        self._forget_old()
        if delivery_id in self._seen:
            return False
        self._seen[delivery_id] = self._clock.now()
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True

    def release(self, delivery_id: str) -> None:
        """Forget a claim whose delivery could not be acted on: GitHub may send it again."""
        self._seen.pop(delivery_id, None)

    def _forget_old(self) -> None:
        horizon = self._clock.now() - self._keep
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)
