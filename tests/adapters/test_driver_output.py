"""CapturedOutput keeps what a driver printed in bounded memory, and shows the same text as
capping the whole output at once would, however the pipe cut it into reads."""

from __future__ import annotations

import os
import random
import tracemalloc

import pytest

from gitopsd.adapters.driver_output import CapturedOutput

SECRETS = [b"hunter22", b"s3cret"]


def whole_output_capped(data: bytes, limit: int) -> str:
    """The same output added in one piece (the cap itself is pinned by the runner's tests)."""
    captured = CapturedOutput(limit)
    captured.add(data)
    return captured.text(SECRETS)


def in_chunks(data: bytes, seed: int) -> list[bytes]:
    chance = random.Random(seed)
    chunks, at = [], 0
    while at < len(data):
        size = chance.choice([1, 7, 100, 4096, 65536])
        chunks.append(data[at : at + size])
        at += size
    return chunks


@pytest.mark.parametrize("size", [0, 10, 999, 1000, 1001, 5000, 300_000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_text_does_not_depend_on_how_the_output_came(size: int, seed: int) -> None:
    chance = random.Random(size)
    words = [b"line ", b"hunter22", b"s3cret ", b"\n", b"x" * 13]
    data = b"".join(chance.choice(words) for _ in range(size))[:size]
    captured = CapturedOutput(1000)
    for chunk in in_chunks(data, seed):
        captured.add(chunk)
    assert captured.size == size
    assert captured.text(SECRETS) == whole_output_capped(data, 1000)


def test_short_output_is_whole_and_redacted() -> None:
    captured = CapturedOutput(1000)
    captured.add(b"password is hunter22\n")
    assert captured.text(SECRETS) == "password is ***\n"


def test_long_output_keeps_head_and_tail_and_counts_the_rest() -> None:
    captured = CapturedOutput(10)
    captured.add(b"0123456789" * 100 + b"END")
    assert captured.text([]) == "01234\n[... 993 bytes omitted ...]\n89END"


def test_memory_stays_bounded_however_much_is_printed() -> None:
    captured = CapturedOutput(1000)
    chunk = b"y" * 10_000
    tracemalloc.start()
    try:
        for _ in range(1000):
            captured.add(chunk)
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert captured.size == 10_000_000
    assert kept < 50_000  # about the 1,000 bytes asked for, not the 10 MB printed
    assert len(captured.text([]).encode()) < 1100


def test_reading_a_pipe_stops_when_empty_and_says_when_it_is_closed() -> None:
    output, printed_to = os.pipe()
    os.set_blocking(output, False)
    captured = CapturedOutput(1000)
    try:
        os.write(printed_to, b"first\n")
        assert captured.read_from(output) is False  # nothing more for now, still open
        os.write(printed_to, b"second\n")
        os.close(printed_to)
        assert captured.read_from(output) is True  # the rest, then end of file
    finally:
        os.close(output)
    assert captured.text([]) == "first\nsecond\n"
