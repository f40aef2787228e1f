"""cache/connect.py's `atomic`: one transaction, savepoints inside it, and sqlite3 errors mapped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from seo_sync.cache.connect import atomic


class Mapped(Exception):
    """What the caller's error map makes of a sqlite3 error."""

    def __init__(self, error: sqlite3.Error, phase: str) -> None:
        super().__init__(f"{phase}: {error}")
        self.phase = phase


def _conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
    return conn


def _keys(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT k FROM t ORDER BY k")]


def test_a_block_commits_as_one_and_rolls_back_as_one(tmp_path):
    """Rows written in a block appear together on success and not at all when it raises."""
    conn = _conn(tmp_path / "a.db")
    with atomic(conn, Mapped):
        conn.execute("INSERT INTO t VALUES ('a')")
        conn.execute("INSERT INTO t VALUES ('b')")
    with pytest.raises(ZeroDivisionError), atomic(conn, Mapped):
        conn.execute("INSERT INTO t VALUES ('c')")
        _ = 1 / 0
    assert _keys(conn) == ["a", "b"] and not conn.in_transaction


def test_an_inner_block_is_a_savepoint_the_outer_block_survives(tmp_path):
    """An inner failure undoes only the inner rows; the outer transaction still commits its own."""
    conn = _conn(tmp_path / "a.db")
    with atomic(conn, Mapped):
        conn.execute("INSERT INTO t VALUES ('outer')")
        with pytest.raises(KeyError), atomic(conn, Mapped):
            conn.execute("INSERT INTO t VALUES ('inner')")
            raise KeyError("inner fails")
        with atomic(conn, Mapped):
            conn.execute("INSERT INTO t VALUES ('inner2')")
    assert _keys(conn) == ["inner2", "outer"]


def test_a_locked_database_fails_at_begin_through_the_error_map(tmp_path):
    """BEGIN IMMEDIATE takes the write lock first: a held lock is the caller's error, phase "begin"."""
    path = tmp_path / "a.db"
    holder = _conn(path)
    holder.execute("BEGIN IMMEDIATE")
    conn = _conn(path)
    with pytest.raises(Mapped) as raised, atomic(conn, Mapped):
        conn.execute("INSERT INTO t VALUES ('never')")
    holder.execute("ROLLBACK")
    assert raised.value.phase == "begin" and _keys(conn) == []


def test_an_sqlite_error_in_the_body_is_mapped_and_rolled_back(tmp_path):
    """A constraint failure inside the block rolls everything back and leaves as the caller's error."""
    conn = _conn(tmp_path / "a.db")
    with pytest.raises(Mapped) as raised, atomic(conn, Mapped):
        conn.execute("INSERT INTO t VALUES ('x')")
        conn.execute("INSERT INTO t VALUES ('x')")
    assert raised.value.phase == "body" and _keys(conn) == [] and not conn.in_transaction
