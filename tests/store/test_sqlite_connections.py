"""The SQLite store's connections: lent one at a time, a few kept, the rest closed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gitopsd.adapters.sqlite_connections import Connections
from tests.store.test_sqlite_store import is_open


@pytest.fixture
def opened() -> list[sqlite3.Connection]:
    return []


@pytest.fixture
def pool(tmp_path: Path, opened: list[sqlite3.Connection]) -> Connections:
    def open_connection() -> sqlite3.Connection:
        connection = sqlite3.connect(tmp_path / "db", isolation_level=None)
        opened.append(connection)
        return connection

    return Connections(open_connection, keep=2)


def test_a_returned_connection_is_lent_again(
    pool: Connections, opened: list[sqlite3.Connection]
) -> None:
    with pool.borrowed() as first:
        pass
    with pool.borrowed() as second:
        assert second is first
    assert len(opened) == 1


def test_connections_lent_at_once_are_distinct_and_only_keep_of_them_stay_open(
    pool: Connections, opened: list[sqlite3.Connection]
) -> None:
    with pool.borrowed() as a, pool.borrowed() as b, pool.borrowed() as c:
        assert len({id(a), id(b), id(c)}) == 3
    assert [is_open(c) for c in opened] == [False, True, True]  # a came back third: beyond keep


def test_a_connection_returned_inside_a_transaction_is_closed_not_lent_again(
    pool: Connections, opened: list[sqlite3.Connection]
) -> None:
    with pool.borrowed() as connection:
        connection.execute("BEGIN")
    assert not is_open(connection)
    with pool.borrowed() as fresh:
        assert not fresh.in_transaction
    assert len(opened) == 2


def test_close_closes_the_idle_ones_now_and_a_lent_one_when_it_comes_back(
    pool: Connections, opened: list[sqlite3.Connection]
) -> None:
    with pool.borrowed():
        pass
    with pool.borrowed() as lent:
        with pool.borrowed() as other:
            pass
        pool.close()
        assert not is_open(other)
        assert is_open(lent)
    assert not is_open(lent)
