"""What an environment following an upstream wants: the newest revision verified and soaked,
never a failed one, never one older than what it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gitopsd.engine.promotion import Hold, candidate

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_nothing_to_promote_before_the_upstream_verified_anything() -> None:
    found = candidate([], soak=60, now=at(0), current=None)
    assert found.revision is None and "no revision" in found.reason


def test_without_soak_the_newest_verified_revision_is_wanted_at_once() -> None:
    holds = [Hold("aaa", at(0), at(10)), Hold("bbb", at(10))]
    assert candidate(holds, soak=0, now=at(10), current="aaa").revision == "bbb"


def test_a_revision_waits_until_it_has_soaked_and_says_when() -> None:
    holds = [Hold("bbb", at(0))]
    early = candidate(holds, soak=300, now=at(4), current=None)
    assert early.revision is None and early.look_again_at == at(5)
    assert "bbb soaks until 2026-11-30 12:05:00Z (5m)" in early.reason
    assert candidate(holds, soak=300, now=at(5), current=None).revision == "bbb"


def test_while_the_newest_soaks_an_older_soaked_revision_is_promoted() -> None:
    holds = [Hold("aaa", at(0), at(30)), Hold("bbb", at(30))]
    found = candidate(holds, soak=600, now=at(32), current=None)
    assert found.revision == "aaa" and found.look_again_at == at(40)


def test_a_revision_left_before_its_soak_ended_never_qualifies() -> None:
    holds = [Hold("aaa", at(0), at(2)), Hold("bbb", at(2))]
    found = candidate(holds, soak=300, now=at(4), current=None)
    assert found.revision is None and found.look_again_at == at(7)


def test_an_environment_is_never_moved_backwards() -> None:
    holds = [Hold("aaa", at(0), at(30)), Hold("bbb", at(30))]
    found = candidate(holds, soak=600, now=at(32), current="bbb")
    assert found.revision is None and "up to date" in found.reason  # not "aaa", though soaked


def test_up_to_date_is_nothing_to_do() -> None:
    holds = [Hold("bbb", at(0))]
    assert candidate(holds, soak=0, now=at(1), current="bbb").revision is None


def test_a_revision_the_upstream_went_back_to_is_no_newer_than_it_was() -> None:
    """dev verified aaa, then bbb, then was rolled back to aaa: prod at bbb stays there, and
    takes ccc once dev verifies it."""
    holds = [Hold("aaa", at(0), at(10)), Hold("bbb", at(10), at(20)), Hold("aaa", at(20))]
    stays = candidate(holds, soak=0, now=at(30), current="bbb")
    assert stays.revision is None and stays.reason == "up to date with the upstream at bbb"
    assert candidate(holds, soak=0, now=at(30), current=None).revision == "aaa"
    moved_on = [*holds[:2], Hold("aaa", at(20), at(40)), Hold("ccc", at(40))]
    assert candidate(moved_on, soak=0, now=at(50), current="bbb").revision == "ccc"
