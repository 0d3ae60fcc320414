"""Values kept encrypted at rest: sensitive outputs and secret inputs in the state store.

A sealed value is stored as `{"$encrypted": "<Fernet token>"}` inside the JSON record that
holds it, so no table changes and every store (memory, SQLite, PostgreSQL) keeps it the same
way. Fernet (AES-128-CBC with HMAC-SHA256, from the `cryptography` package) authenticates what
it decrypts: a token made with another key is refused, never decrypted into garbage.

The key is `GITOPSD_ENCRYPTION_KEY` when set (what hosts sharing a PostgreSQL store must all be
given), else the file `encryption.key` in the data folder, created 0600 the first time a value
is sealed, and only while the store holds no sealed value: a key file deleted after values
were sealed with it is an error naming both (a new key would make them unreadable for good),
and opening a value never creates one. A key file others may read is closed to 0600 with a
warning. It is read on first use, not when the store opens: `status` and the API read
records whose sealed values they only show as `***`, and must work without the key.

`digest` is a keyed hash (HMAC-SHA256, with a key derived from the same key) for values that
must be compared but never read back: sensitive inputs as they enter a fingerprint, and
secret-named inputs as the store keeps them (`keyed_hash`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from gitopsd.errors import EncryptionKeyError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

MARKER = "$encrypted"
KEY_VARIABLE = "GITOPSD_ENCRYPTION_KEY"
KEY_FILE = "encryption.key"
FERNET_KEY_BYTES = 32  # a Fernet key: 32 bytes, url-safe base64 (what the key file holds)
log = logging.getLogger("gitopsd.encryption")


def is_sealed(value: object) -> bool:
    """Whether `value` is a sealed value as stored (see the module docstring)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(MARKER), str)


def keyed_hash(digest: Callable[[bytes], str], value: object) -> str:
    """How a value is compared without being kept: in fingerprints, and in place of a
    secret-named input in the store (the same text, so a record's hash and a value rendered
    again can be compared)."""
    return "hmac-sha256:" + digest(json.dumps(value, sort_keys=True, default=str).encode())


class Sealer:
    """Seals and opens values with the key of one data folder (or the variable's key)."""

    def __init__(
        self, *, key: str | None, data_dir: Path, sealed_exist: Callable[[], bool] | None = None
    ) -> None:
        """`sealed_exist`: whether the store already holds sealed values (asked only when
        the key file is missing, before making a new one)."""
        self._sealed_exist = sealed_exist or (lambda: False)
        self._given = key or None
        self._key_file = data_dir / KEY_FILE
        self._fernet: Fernet | None = None
        self._raw: bytes | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read (or create) the key now; EncryptionKeyError if it is unusable."""
        self._key(create=True)

    def seal(self, value: JsonValue) -> dict[str, JsonValue]:
        token = self._cipher().encrypt(json.dumps(value).encode())
        return {MARKER: token.decode("ascii")}

    def open(self, value: JsonValue) -> JsonValue:
        """The value sealed in `value` (a sealed value); EncryptionKeyError if the key is not
        the one it was sealed with."""
        assert isinstance(value, dict)
        token = value[MARKER]
        assert isinstance(token, str)
        from cryptography.fernet import InvalidToken  # loaded with the cipher: see `_cipher`

        try:
            cipher = self._cipher(create=False)  # a sealed value: its key existed
            clear: JsonValue = json.loads(cipher.decrypt(token.encode("ascii")))
        except (InvalidToken, UnicodeEncodeError) as error:
            raise EncryptionKeyError(
                f"cannot decrypt a sensitive value: {self._source()} is not the key it was"
                f" encrypted with (set {KEY_VARIABLE} to the key this state was written with)"
            ) from error
        return clear

    def digest(self, data: bytes) -> str:
        """The keyed hash of `data`, in hex; the same for the same key and data."""
        raw = self._key(create=True)
        # a key of its own for hashing, so a hash never reveals anything of the cipher's key
        hash_key = hmac.new(raw, b"gitopsd fingerprints", hashlib.sha256).digest()
        return hmac.new(hash_key, data, hashlib.sha256).hexdigest()

    def _cipher(self, *, create: bool = True) -> Fernet:
        """The cipher of the key. `cryptography` is loaded here, the first time a value is
        sealed or opened: a daemon whose components declare nothing sensitive never needs
        its resident memory (benchmarks/README.md)."""
        from cryptography.fernet import Fernet  # heavy, optional: see above

        raw = self._key(create=create)
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(base64.urlsafe_b64encode(raw))
            return self._fernet

    def _key(self, *, create: bool) -> bytes:
        """The key's 32 bytes, read (or created) once."""
        with self._lock:
            if self._raw is None:
                self._raw = self._read_key(create=create)
            return self._raw

    def _read_key(self, *, create: bool) -> bytes:
        key = self._given if self._given is not None else self._key_from_file(create=create)
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, binascii.Error, UnicodeEncodeError):
            raw = b""
        if len(raw) != FERNET_KEY_BYTES:
            raise EncryptionKeyError(
                f"{self._source()} is not a valid key: expected 32 url-safe base64-encoded"
                " bytes, as in the key file gitopsd creates"
            )
        return raw

    def _key_from_file(self, *, create: bool) -> str:
        try:
            key = self._key_file.read_text().strip()
        except FileNotFoundError:
            if not create or self._sealed_exist():
                raise EncryptionKeyError(
                    f"the encryption key is missing: {self._key_file} does not exist and the"
                    f" state holds values encrypted or hashed with it; restore the file or set"
                    f" {KEY_VARIABLE} to that key"
                ) from None
            return self._create_key_file()
        except OSError as error:
            raise EncryptionKeyError(f"{self._key_file}: cannot read: {error.strerror}") from None
        self._close_key_file()
        return key

    def _close_key_file(self) -> None:
        """A key file group or others may read (copied with `cp`, restored from a backup) is
        made 0600 again, with a warning: the key may have been read meanwhile."""
        try:
            mode = stat.S_IMODE(self._key_file.stat().st_mode)
            if mode & 0o077:
                self._key_file.chmod(0o600)
                log.warning(
                    "gitopsd: warning: %s was readable by other users (mode %04o): made 0600",
                    self._key_file,
                    mode,
                )
        except OSError:
            return  # not ours to change (read-only, another owner): used as it is

    def _create_key_file(self) -> str:
        """A new key, written 0600 under a private name then linked into place: two
        processes starting at once end up with the same key, the one linked first."""
        key = base64.urlsafe_b64encode(os.urandom(FERNET_KEY_BYTES))  # as Fernet makes them
        self._key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = self._key_file.with_name(f".{KEY_FILE}.{os.getpid()}")
        try:
            handle = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(handle, "wb") as written:
                written.write(key + b"\n")
            try:
                os.link(scratch, self._key_file)
            except FileExistsError:
                return self._key_file.read_text().strip()
        except OSError as error:
            raise EncryptionKeyError(
                f"{self._key_file}: cannot create the encryption key: {error.strerror}"
            ) from None
        finally:
            scratch.unlink(missing_ok=True)
        return key.decode("ascii")

    def _source(self) -> str:
        return KEY_VARIABLE if self._given is not None else str(self._key_file)
