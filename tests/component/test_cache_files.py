"""The cache file on disk and its readiness marker: WAL files that never go away, a database that
appears whole, and a marker that turns complete only with the fifth table."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path

import pytest

from seo_sync.cache import wal_files
from seo_sync.cache.writer import Cache, Swap
from seo_sync.errors import CacheError
from seo_sync.schema import TABLES


def _names(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def test_a_new_cache_appears_with_its_wal_files_and_a_marker_not_complete(tmp_path):
    """Cache.open on a missing file builds it elsewhere and renames it in, -wal/-shm already beside it."""
    path = tmp_path / "cache.db"
    cache = Cache.open(path)
    assert {"cache.db", "cache.db-wal", "cache.db-shm"} <= _names(path)
    assert "cache.db.new" not in _names(path)
    marker = cache.readiness()
    assert (marker.complete, marker.completed_at) == (False, None) and marker.last_commit_at is not None
    cache.close()


def test_close_keeps_the_wal_files_and_empties_the_log(tmp_path):
    """After a clean close -wal (empty) and -shm stay, and the file is still in WAL mode."""
    path = tmp_path / "cache.db"
    cache = Cache.open(path)
    cache.save_checkpoints([])
    cache.close()
    assert {"cache.db-wal", "cache.db-shm"} <= _names(path)
    assert (tmp_path / "cache.db-wal").stat().st_size == 0
    with open(path, "rb") as f:
        assert f.read(20)[18:20] == b"\x02\x02"  # the header's read/write versions: WAL


def test_missing_wal_files_are_put_back_at_open(tmp_path):
    """Should something remove -wal/-shm, the next writer start creates them before anything else."""
    path = tmp_path / "cache.db"
    Cache.open(path).close()
    for suffix in wal_files.WAL_SUFFIXES:
        (tmp_path / f"cache.db{suffix}").unlink()
    cache = Cache.open(path)
    assert {"cache.db-wal", "cache.db-shm"} <= _names(path)
    cache.close()


def test_a_stale_wal_beside_a_missing_database_is_never_replayed_into_a_new_one(tmp_path):
    """A -wal left from an earlier database is removed before the new database appears (SQLite would
    otherwise apply its frames, the earlier database's pages, to the new file)."""
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE stranger (x)")
    stale = (tmp_path / "other.db-wal").read_bytes()  # committed frames, not checkpointed
    conn.close()
    assert len(stale) > 32
    (tmp_path / "cache.db-wal").write_bytes(stale)
    cache = Cache.open(tmp_path / "cache.db")
    tables = {r[0] for r in cache.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "stranger" not in tables and "businesses" in tables
    cache.close()


def test_a_rolled_back_transaction_leaves_last_commit_at_alone(tmp_path):
    """last_commit_at moves with each commit and only then."""
    cache = Cache.open(tmp_path / "cache.db")
    before = cache.readiness().last_commit_at
    with pytest.raises(CacheError), cache.transaction():
        cache.conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert cache.readiness().last_commit_at == before
    cache.save_checkpoints([])
    assert cache.readiness().last_commit_at > before
    cache.close()


def test_the_marker_turns_complete_with_the_fifth_published_table(tmp_path):
    """Publishing four tables leaves the marker incomplete; the commit that adds the fifth completes it."""
    cache = Cache.open(tmp_path / "cache.db")
    specs = list(TABLES.values())
    for spec in specs:
        cache.create_shadow(spec)
    cache.publish([Swap(spec, None, []) for spec in specs[:4]])
    assert cache.readiness().complete is False
    cache.publish([Swap(specs[4], None, [])])
    marker = cache.readiness()
    assert marker.complete and marker.completed_at is not None
    cache.close()


def test_a_cache_synced_before_the_marker_existed_starts_complete(tmp_path):
    """A cache whose five tables all had a full sync gets a complete marker when it is first opened."""
    path = tmp_path / "cache.db"
    cache = Cache.open(path)
    cache.conn.execute("DROP TABLE _sync_readiness")
    cache.conn.executemany("INSERT INTO _sync_tables (table_name, last_full_sync) VALUES (?, 1.0)",
                           [(name,) for name in TABLES])
    cache.close()
    cache = Cache.open(path)
    assert cache.readiness().complete is True
    cache.close()


def test_a_read_only_connection_closing_last_leaves_the_wal_files(tmp_path):
    """The keeper's premise: SQLite's last close removes -wal/-shm only from a connection that may write."""
    path = tmp_path / "cache.db"
    Cache.open(path).close()
    keeper = wal_files.open_keeper(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("INSERT INTO _sync_meta (key, value) VALUES ('probe', '1')")
    writer.close()
    keeper.close()
    assert {"cache.db-wal", "cache.db-shm"} <= _names(path)
    plain = sqlite3.connect(path, isolation_level=None)
    plain.execute("SELECT 1 FROM _sync_meta").fetchall()
    plain.close()  # and a writable connection closing last does remove them (why the keeper exists)
    assert not {"cache.db-wal", "cache.db-shm"} & _names(path)


def test_a_cache_dropped_without_close_still_leaves_the_wal_files(tmp_path):
    """Dropping an open Cache without close (a forgotten close, interpreter exit) closes the writer's
    connection before the keeper, so the WAL files stay."""
    path = tmp_path / "cache.db"
    cache = Cache.open(path)
    cache.save_checkpoints([])
    del cache
    gc.collect()
    assert {"cache.db-wal", "cache.db-shm"} <= _names(path)
