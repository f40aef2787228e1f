"""The example reader retries exactly the contract's transient states: a busy cache and a WAL index
that a read-only connection cannot use yet (SQLITE_READONLY_RECOVERY, SQLITE_READONLY_CANTINIT)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.reader_procs import reader_example


def _failing(code: int, times: int) -> tuple[list[int], Callable[[sqlite3.Connection], str]]:
    """A read that fails `times` times with SQLite's extended `code`, then returns; and its call log."""
    calls: list[int] = []

    def fn(_conn: sqlite3.Connection) -> str:
        calls.append(1)
        if len(calls) <= times:
            error = sqlite3.OperationalError("attempt to write a readonly database")
            error.sqlite_errorcode = code  # what sqlite3 sets on the errors it raises
            raise error
        return "read"
    return calls, fn


@pytest.fixture
def conn(tmp_path: Path):
    path = tmp_path / "cache.db"
    sqlite3.connect(path).close()
    c = reader_example.connect(path)
    yield c
    c.close()


@pytest.mark.parametrize("code", [sqlite3.SQLITE_BUSY, sqlite3.SQLITE_READONLY_RECOVERY,
                                  sqlite3.SQLITE_READONLY_CANTINIT])
def test_a_transient_state_is_read_through(conn, code):
    """Met once, the state costs one retry and the read returns."""
    calls, fn = _failing(code, 1)
    assert reader_example.read(conn, fn) == "read"
    assert len(calls) == 2


def test_any_other_error_is_raised_at_once(conn):
    """An error outside the contract's transient states is a real problem: no retry."""
    calls, fn = _failing(sqlite3.SQLITE_IOERR, 1)
    with pytest.raises(sqlite3.OperationalError):
        reader_example.read(conn, fn)
    assert len(calls) == 1
