"""The WAL a long reader let grow is cut back: by the checkpoint job with no writes at all, and by the
writer itself once writes go on."""

from __future__ import annotations

import sqlite3

from seo_sync import codec
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES

LARGE = 4 * 1024 * 1024  # more than the writer's own checkpoints let the WAL grow to


def wal_bytes(path) -> int:
    return (path.parent / (path.name + "-wal")).stat().st_size


def _write(cache: Cache, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        item = codec.item_from_python({"business_id": f"b{i:05d}", "name": "x" * 16_000, "_version": 1})
        cache.apply_item(BUSINESSES, (f"b{i:05d}",), item, read_at=1.0)


def _grown_under_a_reader(path) -> Cache:
    cache = Cache.open(path)
    _write(cache, 1)
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM businesses").fetchone()
    _write(cache, 400, start=1)
    assert wal_bytes(path) > LARGE
    reader.execute("COMMIT")
    reader.close()
    return cache


def test_the_checkpoint_job_truncates_a_wal_a_reader_let_grow(tmp_path):
    """No write after the reader ends: one checkpoint run leaves the WAL empty."""
    path = tmp_path / "cache.db"
    cache = _grown_under_a_reader(path)
    try:
        assert cache.wal_checkpoint()[0] == 0
        assert wal_bytes(path) == 0
    finally:
        cache.close()


def test_writes_after_the_reader_cut_the_wal_back(tmp_path):
    """Writes going on after the reader ends restart the WAL, and the writer cuts it back as it does."""
    path = tmp_path / "cache.db"
    cache = _grown_under_a_reader(path)
    try:
        _write(cache, 300, start=1000)
        assert wal_bytes(path) <= LARGE
    finally:
        cache.close()
