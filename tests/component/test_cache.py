"""cache.py basics on a temp file: WAL, the writer lock, shadow swap under a reader, version-guarded applies."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from seo_sync import codec
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.errors import CacheError, ExitCode, LockHeld
from seo_sync.schema import TABLES
from tests.support.items import biz

BUSINESSES = TABLES["businesses"]


def fill(cache: Cache, items: list[codec.Item]) -> None:
    """Replace the businesses table through a shadow, as a full sync does."""
    cache.create_shadow(BUSINESSES)
    cache.insert_scanned(BUSINESSES, items)
    cache.swap_shadow(BUSINESSES, "arn:test", [], reason="test")


def test_open_uses_wal_and_creates_the_internal_tables(cache, tmp_path):
    """The cache runs in WAL mode with a busy timeout, and has its _sync_ tables and schema version."""
    assert cache.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cache.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    names = {r[0] for r in cache.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"_sync_meta", "_sync_tables", "_sync_checkpoints", "_sync_tombstones", "_sync_dead_letters",
            *TABLES} <= names
    fill(cache, [biz("a")])
    assert (tmp_path / "cache.db-wal").exists()


def test_reopening_keeps_data_and_drops_a_leftover_shadow(tmp_path):
    """A shadow left by a killed full sync is dropped on open; the live table is kept."""
    c = Cache.open(tmp_path / "cache.db")
    fill(c, [biz("a"), biz("b")])
    c.create_shadow(BUSINESSES)
    c.insert_scanned(BUSINESSES, [biz("half")])
    c.close()
    c = Cache.open(tmp_path / "cache.db")
    names = {r[0] for r in c.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "_shadow_businesses" not in names and c.count("businesses") == 2
    c.close()


def test_reader_opens_a_cache_whose_path_has_uri_characters(tmp_path):
    """'?', '#', '%' and spaces in the data dir do not end or change the read-only URI's path."""
    odd = tmp_path / "data ?x=1 #frag %41"
    odd.mkdir()
    c = Cache.open(odd / "cache.db")
    fill(c, [biz("a")])
    c.close()
    reader = Reader.open(odd / "cache.db")
    try:
        assert reader.count("businesses") == 1
    finally:
        reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [odd.name]  # no stray file at a truncated path


def test_writer_lock_held_in_this_process_names_the_pid(tmp_path):
    """A second WriterLock on the same cache raises LockHeld (exit 75) naming the holder's pid."""
    with WriterLock(tmp_path / "cache.db"):
        with pytest.raises(LockHeld) as exc:
            WriterLock(tmp_path / "cache.db").acquire()
    assert exc.value.pid == os.getpid() and f"pid {os.getpid()}" in exc.value.message
    assert exc.value.exit_code == ExitCode.TEMPFAIL and exc.value.hint
    WriterLock(tmp_path / "cache.db").acquire().release()  # released: free again


def test_writer_lock_held_by_another_process(tmp_path):
    """A lock held by another process names that process's pid, and is free once it exits."""
    code = ("import sys; from pathlib import Path; from seo_sync.cache.lock import WriterLock; "
            f"lock = WriterLock(Path({str(tmp_path / 'cache.db')!r})).acquire(); print('locked', flush=True); "
            "sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld) as exc:
            WriterLock(tmp_path / "cache.db").acquire()
        assert exc.value.pid == proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    WriterLock(tmp_path / "cache.db").acquire().release()


def test_swap_under_a_reader_holding_a_snapshot(cache, tmp_path):
    """A reader inside a snapshot keeps seeing the old table through a swap, and the whole new one after."""
    fill(cache, [biz(f"old{i}") for i in range(3)])
    reader = Reader.open(tmp_path / "cache.db")
    try:
        with reader.snapshot():
            assert reader.count("businesses") == 3
            fill(cache, [biz(f"new{i}") for i in range(5)])
            assert reader.count("businesses") == 3
            assert [r["business_id"] for r in reader.rows(BUSINESSES)] == ["old0", "old1", "old2"]
        assert reader.count("businesses") == 5
        assert reader.table_states()["businesses"]["full_sync_reason"] == "test"
    finally:
        reader.close()


def test_apply_item_applies_the_consistent_read_as_the_truth(cache):
    """apply_item writes what DynamoDB answered, even a lower _version (a reset): the read is the truth."""
    key = ("acme",)
    assert cache.apply_item(BUSINESSES, key, biz("acme", 2, name="v2")).upserted == 1
    assert cache.apply_item(BUSINESSES, key, biz("acme", 1, name="v1")).upserted == 1
    assert Reader(cache.conn).get(BUSINESSES, key) == biz("acme", 1, name="v1")


def test_soft_and_hard_deletes_read_remove_the_row_and_leave_a_tombstone(cache):
    """A read of a soft-deleted or absent item removes the row and records the delete; a later read brings it back."""
    key = ("gone",)
    cache.apply_item(BUSINESSES, key, biz("gone", 4, name="here"))
    assert cache.apply_item(BUSINESSES, key, biz("gone", 5, deleted=True)).deleted == 1
    assert Reader(cache.conn).get(BUSINESSES, key) is None
    assert cache.conn.execute("SELECT version, hard FROM _sync_tombstones").fetchall() == [(5, 0)]
    cache.apply_item(BUSINESSES, key, biz("gone", 4, name="undeleted"))
    assert Reader(cache.conn).get(BUSINESSES, key)["name"] == {"S": "undeleted"}
    assert cache.apply_item(BUSINESSES, key, None).deleted == 1
    assert Reader(cache.conn).get(BUSINESSES, key) is None


def test_replace_business_touches_only_that_business(cache):
    """replace_business swaps one business's rows in all five tables and leaves other businesses alone."""
    kw = TABLES["keywords"]
    cache.replace_business("a", {"businesses": [biz("a")], "keywords": [
        {"business_id": {"S": "a"}, "keyword_id": {"S": f"k{i}#en"}} for i in range(3)]})
    cache.replace_business("b", {"businesses": [biz("b")], "keywords": [
        {"business_id": {"S": "b"}, "keyword_id": {"S": "x#es"}}]})
    cache.replace_business("a", {"businesses": [biz("a", name="A")], "keywords": [
        {"business_id": {"S": "a"}, "keyword_id": {"S": "k9#en"}},
        {"business_id": {"S": "a"}, "keyword_id": {"S": "dead#en"}, "_deleted": {"BOOL": True}}]})
    reader = Reader(cache.conn)
    assert [r["keyword_id"] for r in reader.rows(kw, "a")] == ["k9#en"]
    assert [r["keyword_id"] for r in reader.rows(kw, "b")] == ["x#es"]
    assert reader.get(BUSINESSES, ("a",))["name"] == {"S": "A"}


def test_reader_of_a_missing_file_says_how_to_make_one(tmp_path):
    """Opening a cache that does not exist is a CacheError with a next step, not an empty database."""
    with pytest.raises(CacheError) as exc:
        Reader.open(tmp_path / "nope.db")
    assert "sync-from-dynamo" in (exc.value.hint or "") and not (tmp_path / "nope.db").exists()
