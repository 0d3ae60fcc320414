"""The `fake_github` fixture: a started FakeGitHub, stopped after the test.

The root `tests/conftest.py` imports it, so every test can ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.github.fake_github import FakeGitHub


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub().start()
    try:
        yield fake
    finally:
        fake.stop()
