"""The promotion chain (SPEC 3.3): which revision an environment with `from: X` wants next.

Pipeline: verify -> **promote** -> approve -> windows -> apply. An environment that follows
X wants the newest revision X verified (applied, healthy, every gate passed) and held, still
verified, for at least `soak`. X's history is a list of holds: the revision it was verified
at, from when, until it moved on (or still). Three rules keep promotion safe:
- nothing X did not verify is ever a candidate (a failed revision has no hold);
- a revision X moved away from before its soak ended never qualifies (it was not held);
- the chain never moves an environment backwards: a candidate older than what the
  environment runs is no candidate; older by when X first verified it, so a revision X
  returns to (a rollback of X) is no newer than it was (`behind`).
When the newest revision is still soaking, the answer says when it will have soaked, so the
daemon can look again at that moment instead of polling.

Pure: the clock comes in as `now`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Hold:
    """`revision` verified in the upstream from `since` until `until` (None: still)."""

    revision: str
    since: datetime
    until: datetime | None = None

    def held_for(self, now: datetime) -> timedelta:
        return (self.until or now) - self.since


@dataclass(frozen=True)
class Candidate:
    """The revision to promote (None: nothing to do now), why, and when to look again."""

    revision: str | None
    reason: str
    look_again_at: datetime | None = None
    soaking: bool = False  # nothing yet only because the newest verified revision soaks
    soaking_revision: str | None = None  # that revision, while it soaks


def candidate(
    holds: Sequence[Hold], *, soak: float, now: datetime, current: str | None
) -> Candidate:
    """What an environment at `current` should get next from an upstream with `holds`."""
    if not holds:
        return Candidate(None, "the upstream has verified no revision yet")
    newest_first = sorted(holds, key=lambda hold: hold.since, reverse=True)
    needed = timedelta(seconds=soak)
    soaking = newest_first[0]
    look_again = None
    if soaking.until is None and soaking.held_for(now) < needed:
        look_again = soaking.since + needed
    firsts = _first_verified(holds)
    for hold in newest_first:
        if hold.revision == current:
            return Candidate(None, f"up to date with the upstream at {current[:12]}", look_again)
        if _older(firsts, hold.revision, current):
            continue  # the upstream went back to it (a rollback there): not newer than current
        if hold.held_for(now) >= needed:
            return Candidate(hold.revision, _why(hold, soak), look_again)
    is_soaking = look_again is not None
    return Candidate(
        None,
        _waiting(soaking, soak, look_again),
        look_again,
        soaking=is_soaking,
        soaking_revision=soaking.revision if is_soaking else None,
    )


def behind(holds: Sequence[Hold], revision: str, *, current: str | None) -> bool:
    """Whether an environment at `current` would move backwards (or stand still) by taking
    `revision`: it is `current`, or the upstream first verified it before it first verified
    `current`. First, not last: an upstream rolled back to an older revision holds it again,
    and that makes it no newer (prod at S2 is not taken back to S1 because dev was). The same
    order for the candidate and for a revision asked for by name; a revision the upstream
    never held is not judged here (admission refuses it anyway)."""
    if current is None:
        return False
    return revision == current or _older(_first_verified(holds), revision, current)


def _older(firsts: dict[str, datetime], revision: str, current: str | None) -> bool:
    """Whether the upstream first verified `revision` before `current` (both held by it)."""
    taken, reached = firsts.get(revision), firsts.get(current) if current else None
    return taken is not None and reached is not None and taken < reached


def _first_verified(holds: Sequence[Hold]) -> dict[str, datetime]:
    """When the upstream first verified each revision it held: one pass over the holds."""
    firsts: dict[str, datetime] = {}
    for hold in holds:
        if hold.revision not in firsts or hold.since < firsts[hold.revision]:
            firsts[hold.revision] = hold.since
    return firsts


def _why(hold: Hold, soak: float) -> str:
    if not soak:
        return f"{hold.revision[:12]} is verified upstream"
    return f"{hold.revision[:12]} has been verified upstream for at least {_duration(soak)}"


def _waiting(soaking: Hold, soak: float, look_again: datetime | None) -> str:
    if look_again is None:
        return "no revision was held verified upstream for the soak time"
    return (
        f"{soaking.revision[:12]} soaks until {look_again:%Y-%m-%d %H:%M:%S}Z ({_duration(soak)})"
    )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{rest}s" if rest else "",
    ]
    return "".join(parts) or "0s"
