"""Who may approve: listed approvers only, never the author, each person once."""

from __future__ import annotations

from datetime import UTC, datetime

from gitopsd.engine.approving import Approval, Person, counted, missing, refusal
from gitopsd.model.manifests import Approvals

PROD = Approvals(required=2, approvers=["alice", "bob", "carol"], forbid_author=True)
AUTHOR = Person("bob", "bob@example.com")
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def approved(*names: str) -> list[Approval]:
    return [Approval("prod", "c0ffee", Person(name, f"{name}@example.com"), NOW) for name in names]


def test_a_listed_approver_who_did_not_write_the_revision_counts() -> None:
    assert refusal(PROD, approver=Person("alice"), author=AUTHOR, given=[]) is None


def test_an_outsider_is_refused_and_told_who_may_approve() -> None:
    found = refusal(PROD, approver=Person("mallory"), author=AUTHOR, given=[])
    assert found is not None and not found.conflict
    assert found.reason == "mallory is not an approver of this environment (alice, bob, carol)"


def test_the_author_is_refused_by_name_or_by_email() -> None:
    by_name = refusal(PROD, approver=Person("bob"), author=AUTHOR, given=[])
    assert by_name is not None and "wrote this revision" in by_name.reason
    open_policy = Approvals(required=1, forbid_author=True)
    other_token = Person("robert", "BOB@example.com")
    by_email = refusal(open_policy, approver=other_token, author=AUTHOR, given=[])
    assert by_email is not None and "robert wrote this revision" in by_email.reason


def test_the_author_may_approve_when_the_environment_allows_it() -> None:
    lenient = Approvals(required=1, approvers=["bob"], forbid_author=False)
    assert refusal(lenient, approver=Person("bob"), author=AUTHOR, given=[]) is None


def test_a_second_approval_by_the_same_person_is_a_conflict() -> None:
    found = refusal(PROD, approver=Person("alice"), author=AUTHOR, given=approved("alice"))
    assert found is not None and found.conflict
    assert found.reason == "alice has approved this revision already"


def test_distinct_people_count_towards_required() -> None:
    assert missing(PROD, []) == 2
    assert missing(PROD, approved("alice")) == 1
    assert missing(PROD, approved("alice", "carol")) == 0
    assert missing(PROD, approved("alice", "ALICE")) == 1  # one person, two spellings
    assert missing(Approvals(), []) == 0


def test_a_listed_approver_is_matched_whatever_the_case() -> None:
    assert refusal(PROD, approver=Person("Alice"), author=AUTHOR, given=[]) is None
    assert refusal(PROD, approver=Person("CAROL"), author=AUTHOR, given=[]) is None
    twice = refusal(PROD, approver=Person("ALICE"), author=AUTHOR, given=approved("alice"))
    assert twice is not None and twice.conflict


TOKENS_ONLY = Approvals(required=2, authenticated=True)


def test_with_authenticated_only_a_token_holder_may_approve() -> None:
    declared = refusal(TOKENS_ONLY, approver=Person("alice"), author=AUTHOR, given=[])
    assert declared is not None and not declared.conflict
    assert "takes only authenticated approvals" in declared.reason
    assert (
        refusal(TOKENS_ONLY, approver=Person("alice"), author=AUTHOR, given=[], authenticated=True)
        is None
    )


def test_with_authenticated_only_approvals_made_with_a_token_count() -> None:
    given = [
        Approval("prod", "c0ffee", Person("alice"), NOW, authenticated=True),
        Approval("prod", "c0ffee", Person("bob"), NOW),  # self-declared, before the rule
    ]
    assert missing(TOKENS_ONLY, given) == 1
    assert missing(Approvals(required=2), given) == 0


def test_an_approval_from_someone_taken_off_approvers_since_no_longer_counts() -> None:
    narrowed = Approvals(required=2, approvers=["bob", "carol"])
    assert missing(narrowed, approved("alice", "carol")) == 1
    assert [a.approver.name for a in counted(narrowed, approved("alice", "carol"))] == ["carol"]
    assert missing(narrowed, approved("bob", "carol")) == 0


def test_the_authors_approval_no_longer_counts_once_forbid_author_is_set() -> None:
    given = approved("bob", "carol")  # bob wrote it, and approved before the rule
    assert missing(PROD, given, AUTHOR) == 1
    assert missing(PROD, given) == 0  # the author not known: as before
    assert missing(Approvals(required=2), given, AUTHOR) == 0
