"""Which rules govern an environment: those it runs, made stricter by the head, never looser.

An environment's promotion rules (its upstream and soak, approvals, windows) are written in
git like everything else, so a commit could loosen them: without this, a commit that removed
prod's `promotion` or `approvals` was applied to prod at once, under the rules it wrote
itself, skipping the chain. Here the rules of the revision the environment is at govern;
the head's count only where they are stricter (a freeze window committed now holds at once):
- upstream: the one it runs, else the head's (one added is followed at once);
- soak: the longer;
- approvals: the larger count; `forbid_author` and `authenticated` if either asks; the
  approvers it runs, else the head's (who may approve changes once applied there);
- windows: every deny window of both; the allow windows it runs, else the head's.
A loosening takes effect once it has been applied in that environment, through the rules
before it. Pure: both manifests come in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gitopsd.engine.loading import EnvironmentEntry, Repository
from gitopsd.model.manifests import EnvironmentSpec


def stricter(running: EnvironmentSpec, head: EnvironmentSpec) -> EnvironmentSpec:
    """`head` with the rules `running` holds it to (see the module doc)."""
    promotion = head.promotion.model_copy(
        update={
            "from_": running.promotion.from_ or head.promotion.from_,
            "soak": max(running.promotion.soak, head.promotion.soak),
        }
    )
    ran, asked = running.approvals, head.approvals
    approvals = asked.model_copy(
        update={
            "required": max(ran.required, asked.required),
            "approvers": ran.approvers or asked.approvers,
            "forbid_author": ran.forbid_author or asked.forbid_author,
            "authenticated": ran.authenticated or asked.authenticated,
        }
    )
    allows = [w for w in running.windows if w.kind == "allow"] or [
        w for w in head.windows if w.kind == "allow"
    ]
    denies = [w for w in [*running.windows, *head.windows] if w.kind == "deny"]
    return head.model_copy(
        update={"promotion": promotion, "approvals": approvals, "windows": [*denies, *allows]}
    )


def governed_at(
    head: EnvironmentEntry, revision: str | None, manifests_at: Callable[[str], Repository | None]
) -> EnvironmentEntry:
    """`head` held to the rules the environment has at `revision`, the one it is at (None:
    nothing applied yet); `manifests_at` gives a revision's manifests, None when they cannot
    be had (not valid to this gitopsd). One answer for admission and for what status shows."""
    if revision is None:
        return head
    running = manifests_at(revision)
    return governed(head, running.environments.get(head.manifest.name) if running else None)


def governed(head: EnvironmentEntry, running: EnvironmentEntry | None) -> EnvironmentEntry:
    """`head`, the environment's entry at the branch head, held to the rules of `running`,
    its entry at the revision it is at (None: nothing applied, or not readable there)."""
    if running is None:
        return head
    spec = stricter(running.manifest.spec, head.manifest.spec)
    return dataclasses.replace(head, manifest=head.manifest.model_copy(update={"spec": spec}))
