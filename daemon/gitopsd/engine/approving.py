"""Approvals (SPEC 2.2 and 3.3): who may approve a revision for an environment, and when
enough have.

Pipeline: promote -> **approve** -> windows -> apply. Approvals belong to one (environment,
revision): a newer candidate starts from none. The rules, in the order a refusal names them:
- with `approvers` set, only those identities may approve (names matched case-insensitively,
  as the author is: `approve --as Alice` is alice, not an outsider);
- with `forbid_author`, the revision's commit author may not (matched by name or by email,
  case-insensitively, so a second token of the same person does not slip through);
- an identity counts once: `required: 2` means two different people;
- with `authenticated`, only an approval made with an API token is taken, and counts: a
  name declared on the command line (`approve --as`) proves nothing.

Each approval is counted under the rules as they are when the count is taken (`counted`), so
a rule tightened after an approval was given also takes that approval back.

Pure data and rules; the store keeps the approvals and the runtime asks these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gitopsd.model.manifests import Approvals
from gitopsd.model.state import ApprovalRecord


@dataclass(frozen=True)
class Person:
    """An identity: an API token's owner, `approve --as NAME`, or a commit's author."""

    name: str
    email: str | None = None

    def is_same(self, other: Person) -> bool:
        if self.name.casefold() == other.name.casefold():
            return True
        return bool(self.email and other.email and self.email.casefold() == other.email.casefold())


@dataclass(frozen=True)
class Approval:
    environment: str
    revision: str
    approver: Person
    at: datetime
    authenticated: bool = False  # made with an API token, not a self-declared name


@dataclass(frozen=True)
class Refusal:
    """Why an approval is not recorded; `conflict` when it is the state's fault, not the
    approver's (nothing waits for approval, it was given already)."""

    reason: str
    conflict: bool = False


def from_records(records: Sequence[ApprovalRecord]) -> list[Approval]:
    """The store's approval records, as these rules take them."""
    return [
        Approval(
            r.environment,
            r.revision,
            Person(r.approver, r.email),
            r.at,
            authenticated=r.authenticated,
        )
        for r in records
    ]


def refusal(
    policy: Approvals,
    *,
    approver: Person,
    author: Person | None,
    given: Sequence[Approval],
    authenticated: bool = False,
) -> Refusal | None:
    """Why `approver` may not approve now, or None when the approval counts;
    `authenticated` when the approver proved who they are with an API token."""
    if policy.authenticated and not authenticated:
        return Refusal(
            "this environment takes only authenticated approvals, made with an API token "
            "(gitopsd approve --server URL with GITOPSD_TOKEN): a self-declared name proves "
            "nothing"
        )
    if policy.approvers and not _is_listed(approver, policy.approvers):
        allowed = ", ".join(policy.approvers)
        return Refusal(f"{approver.name} is not an approver of this environment ({allowed})")
    if policy.forbid_author and author is not None and approver.is_same(author):
        return Refusal(f"{approver.name} wrote this revision and may not approve it")
    if any(approval.approver.is_same(approver) for approval in counted(policy, given, author)):
        return Refusal(f"{approver.name} has approved this revision already", conflict=True)
    return None  # an earlier approval that no longer counts may be given again


def _is_listed(approver: Person, approvers: Sequence[str]) -> bool:
    return any(approver.is_same(Person(name)) for name in approvers)


def missing(policy: Approvals, given: Sequence[Approval], author: Person | None = None) -> int:
    """How many more distinct approvals the revision needs (0: complete)."""
    return max(0, policy.required - len(counted(policy, given, author)))


def counted(
    policy: Approvals, given: Sequence[Approval], author: Person | None = None
) -> list[Approval]:
    """The approvals of `given` that count under the rules as they are now, one a person.

    An approval is judged when it is given, but the rules may tighten after it: one given
    before `authenticated` was turned on proves nothing, one from a person since taken off
    `approvers` is no longer theirs to give, and one from the revision's `author` (when
    known) no longer counts once `forbid_author` is set. Without this, narrowing the list
    after a colleague approved would leave their approval standing in prod."""
    kept: list[Approval] = []
    for approval in given:
        if _still_counts(policy, approval, author) and not any(
            approval.approver.is_same(other.approver) for other in kept
        ):
            kept.append(approval)
    return kept


def _still_counts(policy: Approvals, approval: Approval, author: Person | None) -> bool:
    if policy.authenticated and not approval.authenticated:
        return False
    if policy.approvers and not _is_listed(approval.approver, policy.approvers):
        return False
    return not (policy.forbid_author and author is not None and approval.approver.is_same(author))
