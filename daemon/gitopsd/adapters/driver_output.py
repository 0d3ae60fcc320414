"""What a driver printed, as gitopsd keeps it: capped, and with secret values redacted.

A secret is a value of at least 4 characters of
- an environment variable (from the inherited environment, including `GITOPSD_*` ones, or the
  driver's `env`),
- or an input (a string, or each string and number inside one that is not: `secret_texts`),
whose name matches, case-insensitively, TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE, CREDENTIAL,
PRIVATE, API_KEY, APIKEY, ACCESS_KEY or AUTH, or an input the call names sensitive (one
rendered from a dependency's sensitive output, runtime/records/sensitivity.py),
- or a value the call lists in `secrets`: the clear sensitive outputs its component made (a
  check that prints what it compares would otherwise store them in clear). Every occurrence
becomes `***`, longest first; a secret cut in two by the output cap loses its visible
fragment too.

While the driver runs, `LiveFeed` hands on what it printed so far, redacted and capped the same
way: what it hands on is always the start of the text kept at the end.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence

from gitopsd.engine.ports import DriverCall, OnOutput
from gitopsd.model.fields import input_variable

SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|API_KEY|APIKEY|ACCESS_KEY|AUTH",
    re.IGNORECASE,
)


MIN_SECRET_LENGTH = 4


REDACTED = b"***"


def secret_values(base_env: Mapping[str, str], call: DriverCall) -> list[bytes]:
    """The values to redact (see the module docstring), as bytes, longest first."""
    own = secrets_in(call_named_values(call), sensitive=call.sensitive_inputs)
    found = secrets_in(base_env.items()) | own | given_secrets(call)
    return list(longest_first(found))


def call_named_values(call: DriverCall) -> list[tuple[str, str]]:
    """The call's own named text values that may be secrets: its `env`, and the texts of
    each input (`secret_texts`: an object's or a number's too)."""
    named = list(call.env.items())
    named += [(name, text) for name, value in call.inputs.items() for text in secret_texts(value)]
    return named


def secret_texts(value: object) -> list[str]:
    """The texts a sensitive value is printed with: a string itself, a number its digits, an
    object or a list each of its leaves (the password inside `{"user", "password"}`, whatever
    JSON spelling prints it), so that a sensitive output that is not a string is redacted
    too. `true`, `false` and `null` are no secret."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in secret_texts(item)]
    return []


def given_secrets(call: DriverCall) -> frozenset[bytes]:
    """The clear values the call names secret whatever prints them (`DriverCall.secrets`)."""
    return frozenset(_to_bytes(value) for value in call.secrets if len(value) >= MIN_SECRET_LENGTH)


def secrets_in(
    named: Iterable[tuple[str, str]], *, sensitive: frozenset[str] = frozenset()
) -> frozenset[bytes]:
    return frozenset(
        _to_bytes(value)
        for name, value in named
        if len(value) >= MIN_SECRET_LENGTH and (name in sensitive or _is_secret_name(name))
    )


def is_secret_name(name: str) -> bool:
    """Whether a variable or input of this name holds a secret (see the module docstring)."""
    return _is_secret_name(name)


def longest_first(secrets: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(sorted(secrets, key=len, reverse=True))


class CapturedOutput:
    """What a driver printed, read from its pipe as it comes, in bounded memory.

    Only what the result can hold is kept: the first `limit + 1` bytes (the whole output when
    it fits), the last `limit - limit // 2` (the tail shown after the cut) and the size. A
    driver printing gigabytes (a trace log) costs neither memory nor disk.
    """

    READ_SIZE = 65536  # a pipe's capacity on Linux
    READS_PER_WAKE = 16  # then the next poll: one chatty driver does not hold up the others

    def __init__(self, limit: int, *, feed: LiveFeed | None = None) -> None:
        self.limit = limit
        self.feed = feed  # told of every read as it comes
        self.size = 0
        self._head = bytearray()
        self._tail = bytearray()
        self._tail_size = limit - limit // 2

    def read_from(self, handle: int) -> bool:
        """Read what the non-blocking `handle` has now; whether it reached end of file."""
        for _ in range(self.READS_PER_WAKE):
            try:
                data = os.read(handle, self.READ_SIZE)
            except BlockingIOError:
                return False
            if not data:
                return True
            self.add(data)
        return False

    def add(self, data: bytes) -> None:
        if self.feed is not None:
            self.feed.add(data)
        self.size += len(data)
        room = self.limit + 1 - len(self._head)
        if room > 0:
            self._head += data[:room]
        if self._tail_size:
            self._tail += data
            if len(self._tail) > 2 * self._tail_size:  # trimmed now and then, not every read
                del self._tail[: -self._tail_size]

    def text(self, secrets: Sequence[bytes]) -> str:
        """The output, at most `limit` bytes of it (head and tail), secrets redacted."""
        if self.size <= self.limit:
            return _decode(redact(bytes(self._head), secrets))
        head = redact(bytes(self._head[: self.limit // 2]), secrets)
        head = head[: len(head) - _partial_secret_at_end(head, secrets)]
        tail = redact(bytes(self._tail[len(self._tail) - self._tail_size :]), secrets)
        tail = tail[_partial_secret_at_start(tail, secrets) :]
        omitted = self.size - len(head) - len(tail)
        newline = "" if head.endswith(b"\n") or not head else "\n"
        marker = f"{newline}[... {omitted} bytes omitted ...]\n"
        return _decode(head) + marker + _decode(tail)


class LiveFeed:
    """What a driver prints, handed to `on_output` as it comes: whole lines, redacted.

    Only the text `CapturedOutput.text` will start with is handed on, so that a reader of the
    live output and a reader of the stored one see the same text: the first `limit // 2` bytes
    (the head kept when the output is cut) and, of those, no piece a secret may still cross.
    An incomplete last line is held back until the rest comes or the call ends (so a secret
    is never split across pieces); a line longer than `LONG_LINE` is handed on in pieces.
    """

    LONG_LINE = 16384

    def __init__(self, on_output: OnOutput, secrets: Sequence[bytes], limit: int) -> None:
        self._on_output = on_output
        self._secrets = secrets
        self._room = limit // 2  # bytes of the head still to come
        self._pending = bytearray()

    def add(self, data: bytes) -> None:
        if self._room <= 0:
            return  # past the head: the rest is known only once the call has ended
        data = data[: self._room]
        self._room -= len(data)
        self._pending += data
        held = bytes(self._pending)
        self._hand_on(_safe_end(held, _line_end(held, self.LONG_LINE), self._secrets))

    def close(self) -> None:
        """The call has ended: what is held back is complete, unless the head was cut."""
        if self._room > 0:
            self._hand_on(len(self._pending))

    def _hand_on(self, end: int) -> None:
        if end <= 0:
            return
        piece = redact(bytes(self._pending[:end]), self._secrets)
        del self._pending[:end]
        self._on_output(_decode(piece))


def _line_end(data: bytes, long_line: int) -> int:
    """Where the last complete line ends; in a line longer than `long_line`, after its last
    ASCII byte (never inside a character)."""
    end = data.rfind(b"\n") + 1
    if end or len(data) <= long_line:
        return end
    for end in range(len(data), 0, -1):
        if data[end - 1] < 0x80:
            return end
    return 0


def _safe_end(data: bytes, end: int, secrets: Sequence[bytes]) -> int:
    """`end`, moved back before any secret that starts before it and may go past it: one
    printed whole, or a start of one at the very end of `data` (the rest may follow)."""
    moved = True
    while moved and end > 0:
        moved = False
        partial = _partial_secret_at_end(data, secrets)
        if partial and len(data) - partial < end:
            end, moved = len(data) - partial, True
        for secret in secrets:
            found = data.find(secret, max(0, end - len(secret) + 1))
            if 0 <= found < end:
                end, moved = found, True
    return end


def redact(data: bytes, secrets: Iterable[bytes]) -> bytes:
    """Every occurrence of each secret replaced by `***`, in the order given (longest first)."""
    for secret in secrets:
        data = data.replace(secret, REDACTED)
    return data


def redact_text(text: str, secrets: Iterable[bytes]) -> str:
    """`redact` of text already decoded (a result's output or error)."""
    return redact(_as_utf8(text), secrets).decode("utf-8", "replace")


def redact_values(text: str, values: Iterable[object]) -> str:
    """`text` with the texts of `values` (`secret_texts`) that are long enough to be secrets
    as `***`, longest first: what a driver printed of values known only once it ended."""
    texts = {t for value in values for t in secret_texts(value) if len(t) >= MIN_SECRET_LENGTH}
    return redact_text(text, sorted(map(_as_utf8, texts), key=len, reverse=True))


def _as_utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=4096)
def _is_secret_name(name: str) -> bool:
    # cached: every call asks again for every inherited variable's name (a drift scan of
    # 1,000 components asked 35,000 times for the same 35 names)
    # the mangled spelling too, so `api-key` counts like `API_KEY`
    return any(SECRET_NAME.search(spelling) for spelling in (name, cached_input_variable(name)))


# a regular expression per input per call otherwise; the names are the same few every call
cached_input_variable = functools.lru_cache(maxsize=4096)(input_variable)


def _to_bytes(value: str) -> bytes:
    try:
        return os.fsencode(value)  # undecodable bytes of inherited variables come back as such
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _partial_secret_at_end(data: bytes, secrets: Sequence[bytes]) -> int:
    """Length of the longest end of `data` that starts some secret (cut by the output cap)."""
    longest = 0
    for secret in secrets:
        for length in range(len(secret) - 1, longest, -1):
            if data.endswith(secret[:length]):
                longest = length
                break
    return longest


def _partial_secret_at_start(data: bytes, secrets: Sequence[bytes]) -> int:
    """Length of the longest start of `data` that ends some secret (cut by the output cap)."""
    return _partial_secret_at_end(data[::-1], [secret[::-1] for secret in secrets])


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
