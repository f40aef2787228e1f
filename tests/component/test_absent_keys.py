"""A read of a key DynamoDB does not hold leaves nothing behind, and expired bookkeeping gives its space back."""

from __future__ import annotations

import os
from pathlib import Path

from seo_sync import codec
from seo_sync.cache.writer import Cache
from seo_sync.schema import KEYWORDS


def _files_bytes(path: Path) -> int:
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))


def _bookkeeping(cache: Cache) -> tuple[int, int]:
    marks = cache.conn.execute("SELECT count(*) FROM _sync_marks").fetchone()[0]
    tombstones = cache.conn.execute("SELECT count(*) FROM _sync_tombstones").fetchone()[0]
    return marks, tombstones


def test_refreshing_absent_keys_writes_nothing(tmp_path: Path) -> None:
    """2,000 reads of keys neither DynamoDB nor the cache ever had: no mark, no tombstone, no growth."""
    cache = Cache.open(tmp_path / "cache.db")
    try:
        cache.wal_checkpoint()
        before = _files_bytes(tmp_path / "cache.db")
        for i in range(2000):
            cache.apply_item(KEYWORDS, (f"nobody-{i}", "none#en"), None)
        assert _bookkeeping(cache) == (0, 0)
        assert _files_bytes(tmp_path / "cache.db") == before
    finally:
        cache.close()


def test_a_key_the_cache_had_still_leaves_its_tombstone(tmp_path: Path) -> None:
    """Absent in DynamoDB but held here: the row goes and a tombstone and a mark keep older records out."""
    cache = Cache.open(tmp_path / "cache.db")
    try:
        key = ("b1", "k#en")
        item = codec.item_from_python({"business_id": "b1", "keyword_id": "k#en", "keyword": "k", "_version": 1})
        cache.apply_item(KEYWORDS, key, item)
        cache.apply_item(KEYWORDS, key, None)
        assert cache.row(KEYWORDS, key) is None
        assert _bookkeeping(cache) == (1, 1)
    finally:
        cache.close()


def test_expired_bookkeeping_gives_the_file_its_space_back(tmp_path: Path) -> None:
    """After tombstones and marks expire, the maintenance job's incremental vacuum shrinks the file."""
    path = tmp_path / "cache.db"
    cache = Cache.open(path)
    try:
        assert cache.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
        for i in range(3000):
            key = (f"b{i}", "k#en")
            item = codec.item_from_python({"business_id": f"b{i}", "keyword_id": "k#en", "keyword": "x" * 200})
            cache.apply_item(KEYWORDS, key, item)
            cache.apply_item(KEYWORDS, key, None)
        full_pages = cache.conn.execute("PRAGMA page_count").fetchone()[0]
        cache.trim_changes(older_than=float("inf"), max_rows=0)  # the change log's entries expire too
        assert cache.expire_tombstones(older_than=float("inf")) == 3000
        assert _bookkeeping(cache) == (0, 0)
        assert cache.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert cache.conn.execute("PRAGMA page_count").fetchone()[0] < full_pages / 2
    finally:
        cache.close()


def test_an_older_file_switches_to_incremental_auto_vacuum(tmp_path: Path) -> None:
    """A cache made before auto-vacuum (auto_vacuum = NONE) is switched once when the writer opens it."""
    import sqlite3

    path = tmp_path / "cache.db"
    Cache.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    cache = Cache.open(path)
    try:
        assert cache.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    finally:
        cache.close()
