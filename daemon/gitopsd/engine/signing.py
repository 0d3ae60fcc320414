"""Whether a revision's commit signature lets it into an environment (SPEC 9).

Pipeline: request -> **admit** -> queue/run. An environment the trust file marks
`require_signed_commits` takes a revision only when git verified its commit's signature
against a signer the trust file lists. The verification itself is git's (the adapter
`adapters.commit_signatures` runs it); this module holds what it found, as data, and the
one rule over it, so admission (engine.admitting) can ask it on every path that brings a
revision in: a commit, `apply --revision`, a promotion, a rollback, an API run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Seal(StrEnum):
    """What git said of a commit's signature (`%G?`), in words."""

    TRUSTED = "trusted"  # good, by a listed signer
    UNSIGNED = "unsigned"  # no signature at all
    UNKNOWN_KEY = "unknown_key"  # signed, but not by a listed signer
    BAD = "bad"  # the signature does not match the commit
    EXPIRED = "expired"  # the key or the signature expired
    REVOKED = "revoked"  # the key was revoked
    UNCHECKED = "unchecked"  # git could not check it (no such key, a verifier failed)


@dataclass(frozen=True)
class Signature:
    """A commit's signature as git verified it: `key` the fingerprint or key id git
    reported, `signer` the listed signer's name (for a trusted one) or the identity the
    signature claims, `detail` git's own words when it could not verify."""

    seal: Seal
    key: str | None = None
    signer: str | None = None
    detail: str | None = None


# the verification of a revision, None when the environment requires no signature
Verify = Callable[[str], Signature | None]

_WHY = {
    Seal.UNSIGNED: "is not signed",
    Seal.UNKNOWN_KEY: "is signed by a key the trust file does not list",
    Seal.BAD: "has a bad signature",
    Seal.EXPIRED: "is signed with an expired key or signature",
    Seal.REVOKED: "is signed with a revoked key",
    Seal.UNCHECKED: "has a signature git could not check",
}


def untrusted(environment: str, revision: str, signature: Signature | None) -> str | None:
    """Why `revision` may not enter `environment`, or None when it may (no signature
    required, or a trusted signer's)."""
    if signature is None or signature.seal is Seal.TRUSTED:
        return None
    found = [f"key {signature.key}" if signature.key else "", signature.signer or ""]
    by = ", ".join(part for part in found if part)
    detail = f": {signature.detail}" if signature.detail else ""
    return (
        f"{revision[:12]} {_WHY[signature.seal]}{f' ({by})' if by else ''}{detail}; "
        f"{environment} requires commits signed by a trusted signer"
    )
