"""Who may call the API: bearer tokens from `GITOPSD_TOKENS_FILE`, and the loopback rule.

The tokens file holds only each token's SHA-256, so reading the file grants nothing; a
request's token is hashed and compared with every entry in constant time. Without a tokens
file the API is open, everyone being `local` with every role, which is safe only because
`check_listen_allowed` then keeps the listener on loopback. The routes (`gitopsd.api.routes`) ask
`Tokens.authenticate` who is calling and `Tokens.allows` whether they hold a role.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from gitopsd.adapters import operator_files
from gitopsd.engine.sources import line_of
from gitopsd.errors import ListenRefusedError, TokensFileError
from gitopsd.model.fields import Name
from gitopsd.runtime.control import Identity

Role = Literal["read", "operate", "approve"]
ROLES: tuple[Role, ...] = get_args(Role)
LOCAL = Identity("local")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FIELDS = "name, email, roles, token_sha256 and optional environments"
_MESSAGES = {  # pydantic's words for a tokens file, where the reader is an operator
    "missing": f"missing (every token has {_FIELDS})",
    "extra_forbidden": f"unknown field (a token has {_FIELDS})",
    "model_type": f"expected a mapping with {_FIELDS}",
    "too_short": "needs at least one role: read, operate or approve",
}
_EMPTY_ENVIRONMENTS = "lists no environment: leave it out for every environment"


class TokenEntry(BaseModel):
    """One entry of the tokens file: an identity, its roles and the hash of its token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="recorded on the runs and approvals it makes")
    email: str = Field(min_length=1)
    roles: tuple[Role, ...] = Field(min_length=1)
    token_sha256: str = Field(description="hex SHA-256 of the token; the token is never stored")
    environments: tuple[Name, ...] | None = Field(
        default=None,
        min_length=1,
        description="the environments the token reaches; left out: every environment",
    )

    def identity(self) -> Identity:
        """Who a request with this entry's token is, with the environments it reaches."""
        reach = None if self.environments is None else frozenset(self.environments)
        return Identity(self.name, self.email, environments=reach, token=self.name)

    @field_validator("token_sha256")
    @classmethod
    def _is_sha256_hex(cls, value: str) -> str:
        if not _SHA256_HEX.fullmatch(value):
            message = "must be 64 lowercase hex digits: the SHA-256 of the token, not the token"
            raise PydanticCustomError("sha256_hex", message)
        return value


class Tokens:
    """The known tokens, or none at all (open mode: everyone is `local` with every role)."""

    def __init__(self, entries: Sequence[TokenEntry] | None) -> None:
        self._entries = None if entries is None else tuple(entries)

    @classmethod
    def none(cls) -> Tokens:
        """Open mode, for a daemon without GITOPSD_TOKENS_FILE (loopback only)."""
        return cls(None)

    @classmethod
    def load(cls, path: Path) -> Tokens:
        """The tokens of a file; TokensFileError names the file, line and field at fault."""
        return cls(load_entries(path))

    @property
    def present(self) -> bool:
        """Whether requests must carry a token (there is a tokens file)."""
        return self._entries is not None

    def authenticate(self, header: str | None) -> Identity | None:
        """The identity behind an `Authorization` header; None when missing or wrong."""
        if self._entries is None:
            return LOCAL
        token = bearer_token(header)
        if token is None:
            return None
        digest = hash_token(token)
        found: TokenEntry | None = None
        for entry in self._entries:  # every entry is compared: the time says nothing
            if hmac.compare_digest(entry.token_sha256, digest) and found is None:
                found = entry
        return None if found is None else found.identity()

    def unknown_environments(self, known: Collection[str]) -> list[str]:
        """`name: environment` for each environment a token lists that is not in `known`
        (a typo, or one not in the repository yet): warned of at start, not refused, since
        the repository's environments change with its commits and the file does not."""
        return [
            f"{entry.name}: {environment}"
            for entry in self._entries or ()
            for environment in entry.environments or ()
            if environment not in known
        ]

    def allows(self, identity: Identity, role: Role) -> bool:
        """Whether `identity` (from `authenticate`) holds `role`."""
        if self._entries is None:
            return True
        return any(e.name == identity.name and role in e.roles for e in self._entries)


def hash_token(token: str) -> str:
    """What the tokens file stores for `token`: its SHA-256 in lowercase hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235); else None."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def check_listen_allowed(host: str, tokens_present: bool) -> None:
    """Refuse to serve an open API (no tokens file) anywhere but on loopback."""
    if tokens_present or is_loopback(host):
        return
    raise ListenRefusedError(
        "without GITOPSD_TOKENS_FILE gitopsd listens on loopback only"
        f" (asked for {host!r}): listen on 127.0.0.1 or set GITOPSD_TOKENS_FILE"
    )


def is_loopback(host: str) -> bool:
    """Whether `host` is `localhost`, 127.0.0.0/8 or ::1 (also bracketed or IPv4-mapped)."""
    name = host.strip()
    name = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def load_entries(path: Path) -> tuple[TokenEntry, ...]:
    """Parse and validate a tokens file (a YAML list of entries), names and tokens unique."""
    text = operator_files.read(path, what="tokens file", error=TokensFileError)
    root = operator_files.compose(path, text, error=TokensFileError)
    if not isinstance(root, yaml.SequenceNode) or not root.value:
        line = 1 if root is None else root.start_mark.line + 1
        raise TokensFileError(f"{path}:{line}: expected a YAML list of tokens with {_FIELDS}")
    data = yaml.safe_load(text)
    entries = tuple(_entry(path, node, item) for node, item in zip(root.value, data, strict=True))
    _check_unique(path, root.value, entries)
    return entries


def _entry(path: Path, node: yaml.Node, item: Any) -> TokenEntry:
    _check_no_duplicate_keys(path, node)
    try:
        return TokenEntry.model_validate(item)
    except ValidationError as error:
        raise TokensFileError(_describe(path, node, error.errors()[0])) from None


def _describe(path: Path, node: yaml.Node, error: ErrorDetails) -> str:
    location = tuple(error["loc"])
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    message = _MESSAGES.get(error["type"], error["msg"])
    if error["type"] == "too_short" and location[:1] == ("environments",):
        message = _EMPTY_ENVIRONMENTS
    where = f"{path}:{line_of(node, location)}"
    return f"{where}: {field.lstrip('.')}: {message}" if field else f"{where}: {message}"


def _check_no_duplicate_keys(path: Path, node: yaml.Node) -> None:
    """YAML keeps the last of two equal keys; a doubled `roles` is a mistake to point out."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value in seen:
            line = key.start_mark.line + 1
            raise TokensFileError(f"{path}:{line}: {key.value}: written twice in one token")
        seen.add(key.value)


def _check_unique(path: Path, nodes: list[yaml.Node], entries: Sequence[TokenEntry]) -> None:
    """Names identify who approved; a hash shared by two entries would be ambiguous."""
    for field in ("name", "token_sha256"):
        first_line: dict[str, int] = {}
        for node, entry in zip(nodes, entries, strict=True):
            value, line = getattr(entry, field), line_of(node, (field,))
            if value in first_line:
                other = first_line[value]
                raise TokensFileError(f"{path}:{line}: {field}: same as the token at line {other}")
            first_line[value] = line
