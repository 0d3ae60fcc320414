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

Pure data and rules; the store keeps the approvals and the runtime asks these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gitopsd.model.manifests import Approvals


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
    if any(approval.approver.is_same(approver) for approval in given):
        return Refusal(f"{approver.name} has approved this revision already", conflict=True)
    return None


def _is_listed(approver: Person, approvers: Sequence[str]) -> bool:
    return any(approver.is_same(Person(name)) for name in approvers)


def missing(policy: Approvals, given: Sequence[Approval]) -> int:
    """How many more distinct approvals the revision needs (0: complete)."""
    distinct: list[Person] = []
    for approval in given:
        if policy.authenticated and not approval.authenticated:
            continue  # given before the environment required tokens: it proves nothing
        if not any(approval.approver.is_same(person) for person in distinct):
            distinct.append(approval.approver)
    return max(0, policy.required - len(distinct))
