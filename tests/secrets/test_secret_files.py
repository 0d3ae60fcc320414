"""Where a secret's value is read from: a file of the secrets folder (its trailing newline
dropped, as `echo` and editors leave one), else GITOPSD_SECRET_<NAME>; anything else is an
error naming the secret and where gitopsd looked."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.adapters.secrets import SecretFiles
from gitopsd.errors import MissingSecretError


def test_one_trailing_newline_is_dropped_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "CRLF").write_bytes(b"value\r\n")
    (tmp_path / "TWO").write_text("line one\nline two\n\n")
    (tmp_path / "SPACES").write_text("  padded  ")
    secrets = SecretFiles(tmp_path, environ={})
    assert secrets.value("CRLF") == "value"
    assert secrets.value("TWO") == "line one\nline two\n"
    assert secrets.value("SPACES") == "  padded  "


def test_the_environment_is_the_fallback(tmp_path: Path) -> None:
    secrets = SecretFiles(tmp_path, environ={"GITOPSD_SECRET_TOKEN": "from-env"})
    assert secrets.value("TOKEN") == "from-env"
    (tmp_path / "TOKEN").write_text("from-file\n")
    assert secrets.value("TOKEN") == "from-file"
    assert SecretFiles(None, environ={"GITOPSD_SECRET_TOKEN": "x1"}).value("TOKEN") == "x1"


def test_a_missing_or_unreadable_secret_says_where_gitopsd_looked(tmp_path: Path) -> None:
    (tmp_path / "FOLDER").mkdir()
    with pytest.raises(MissingSecretError) as missing:
        SecretFiles(None, environ={}).value("TOKEN")
    with pytest.raises(MissingSecretError) as unreadable:
        SecretFiles(tmp_path, environ={}).value("FOLDER")
    assert str(missing.value) == (
        "secret 'TOKEN' is not set: no environment variable GITOPSD_SECRET_TOKEN"
        " (and no --secrets-dir)"
    )
    assert str(unreadable.value) == (
        f"secret 'FOLDER': cannot read {tmp_path / 'FOLDER'}: Is a directory"
    )


def test_a_name_is_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("not a secret")
    folder = tmp_path / "secrets"
    folder.mkdir()
    with pytest.raises(MissingSecretError, match="is not a secret name"):
        SecretFiles(folder, environ={}).value("../outside")
