"""The tokens file (`GITOPSD_TOKENS_FILE`): what it accepts, how a mistake in it is reported
(file, line, field), how a token is checked against it, and where an open API may listen."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gitopsd.api.auth import Tokens, check_listen_allowed, hash_token
from gitopsd.errors import GitopsdError, ListenRefusedError, TokensFileError
from gitopsd.runtime.control import Identity

ALICE = hash_token("alice-token")
BOB = hash_token("bob-token")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


VALID = f"""
- name: alice
  email: alice@example.com
  roles: [read, approve]
  token_sha256: {ALICE}
- name: bob
  email: bob@example.com
  roles:
    - operate
  token_sha256: {BOB}
"""


def test_a_valid_file_authenticates_its_tokens(tmp_path: Path) -> None:
    tokens = Tokens.load(write(tmp_path, VALID))
    assert tokens.present
    alice = tokens.authenticate("Bearer alice-token")
    assert alice == Identity("alice", "alice@example.com", token="alice")
    assert tokens.authenticate("Bearer bob-token") == Identity(
        "bob", "bob@example.com", token="bob"
    )
    assert tokens.allows(alice, "approve")
    assert not tokens.allows(alice, "operate")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer carol-token", f"Bearer {ALICE}", "alice-token"],
)
def test_anything_but_a_known_token_is_nobody(tmp_path: Path, header: str | None) -> None:
    assert Tokens.load(write(tmp_path, VALID)).authenticate(header) is None


def test_without_a_tokens_file_everyone_is_local_with_every_role() -> None:
    tokens = Tokens.none()
    assert not tokens.present
    local = tokens.authenticate(None)
    assert local == Identity("local")
    assert tokens.authenticate("Bearer whatever") == Identity("local")
    assert all(tokens.allows(local, role) for role in ("read", "operate", "approve"))


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read, deploy]
              token_sha256: {ALICE}
            """,
            ":3: roles[1]:",
            "'read', 'operate' or 'approve'",
            id="unknown role",
        ),
        pytest.param(
            """
            - name: alice
              email: alice@example.com
              roles: [read]
              token_sha256: alice-token
            """,
            ":4: token_sha256:",
            "must be 64 lowercase hex digits",
            id="token instead of its hash",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read]
              token_sha256: {ALICE.upper()}
            """,
            ":4: token_sha256:",
            "must be 64 lowercase hex digits",
            id="uppercase hash",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read]
              token_sha256: {ALICE}
            - name: bob
              roles: [read]
              token_sha256: {BOB}
            """,
            ":5: email:",
            "missing",
            id="missing field, at its entry",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read]
              role: [operate]
              token_sha256: {ALICE}
            """,
            ":4: role:",
            "unknown field",
            id="misspelt field",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: []
              token_sha256: {ALICE}
            """,
            ":3: roles:",
            "needs at least one role",
            id="no roles",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read]
              token_sha256: {ALICE}
            - alice
            """,
            ":5:",
            "expected a mapping",
            id="entry not a mapping",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read]
              token_sha256: {ALICE}
            - name: alice
              email: other@example.com
              roles: [operate]
              token_sha256: {BOB}
            """,
            ":5: name:",
            "same as the token at line 1",
            id="duplicate name",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read]
              token_sha256: {ALICE}
            - name: bob
              email: bob@example.com
              roles: [operate]
              token_sha256: {ALICE}
            """,
            ":8: token_sha256:",
            "same as the token at line 4",
            id="duplicate hash",
        ),
        pytest.param(
            f"""
            - name: alice
              email: alice@example.com
              roles: [read]
              roles: [read, operate, approve]
              token_sha256: {ALICE}
            """,
            ":4: roles:",
            "written twice",
            id="duplicate key",
        ),
        pytest.param(
            "tokens:\n  - name: alice\n",
            ":1:",
            "expected a YAML list of tokens",
            id="a mapping, not a list",
        ),
        pytest.param("", ":1:", "expected a YAML list of tokens", id="empty file"),
        pytest.param("[]\n", ":1:", "expected a YAML list of tokens", id="empty list"),
        pytest.param(
            "- name: alice\n  email: [unclosed\n",
            ":3:",
            "invalid YAML",
            id="invalid YAML",
        ),
    ],
)
def test_a_bad_file_is_reported_at_its_file_line_and_field(
    tmp_path: Path, text: str, where: str, says: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TokensFileError) as raised:
        Tokens.load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}{where}"), message
    assert says in message
    assert isinstance(raised.value, GitopsdError)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(TokensFileError, match=r"absent\.yaml: cannot read the tokens file"):
        Tokens.load(path)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_an_open_api_may_listen_on_loopback(host: str) -> None:
    check_listen_allowed(host, False)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "", "128.0.0.1"]
)
def test_an_open_api_may_not_listen_elsewhere(host: str) -> None:
    with pytest.raises(ListenRefusedError) as raised:
        check_listen_allowed(host, False)
    assert "without GITOPSD_TOKENS_FILE gitopsd listens on loopback only" in str(raised.value)
    assert isinstance(raised.value, GitopsdError)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_with_tokens_any_address_is_allowed(host: str) -> None:
    check_listen_allowed(host, True)
