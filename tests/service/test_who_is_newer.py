"""The running daemon follows an item's history as the stream tells it, whatever its `_version` does, and
finds by itself what no record announced: a version reset and an un-delete come back within the lag,
a row edited behind its back is repaired by the rolling verify, counted and shown in status."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.control.client import request
from seo_sync.schema import TABLES
from tests.support.harness import Daemon, wait_until
from tests.support.items import biz

BUSINESSES = TABLES["businesses"]


def cached(data_dir: Path, key: str) -> codec.Item | None:
    """One business as the cache holds it (read-only)."""
    reader = Reader.open(data_dir / "cache.db")
    try:
        return reader.get(BUSINESSES, (key,))
    finally:
        reader.close()


def named(d: Daemon, bid: str, name: str) -> bool:
    """True when the cache holds business `bid` under `name`."""
    got = cached(d.data_dir, bid)
    return got is not None and got.get("name") == {"S": name}


def test_a_soft_delete_then_a_version_reset_brings_the_item_back(seeded, start_daemon):
    """Soft-deleted at _version 2, put back by a foreign writer at _version 1: the cache shows it again."""
    d = start_daemon()
    d.wait_ready()
    seeded.put_item(BUSINESSES, biz("reset-1", 1, "first"))
    seeded.put_item(BUSINESSES, biz("reset-1", 2, "first", deleted=True))
    wait_until(lambda: d.status()["tables"]["businesses"]["records_applied"] >= 2
               and cached(d.data_dir, "reset-1") is None, what="the soft delete applied")
    seeded.put_item(BUSINESSES, biz("reset-1", 1, "put back"))
    started = time.monotonic()
    wait_until(lambda: named(d, "reset-1", "put back"), timeout=10, what="the item back after the version reset")
    assert time.monotonic() - started < 10
    assert d.request("health")["ok"] is True


def test_an_undelete_without_a_version_bump_brings_the_item_back(seeded, start_daemon):
    """_deleted set and then removed, _version 3 both times: the cache shows the item again."""
    d = start_daemon()
    d.wait_ready()
    seeded.put_item(BUSINESSES, biz("undel-1", 3, "live"))
    seeded.put_item(BUSINESSES, biz("undel-1", 3, "live", deleted=True))
    wait_until(lambda: d.status()["tables"]["businesses"]["records_applied"] >= 2
               and cached(d.data_dir, "undel-1") is None, what="the soft delete applied")
    seeded.put_item(BUSINESSES, biz("undel-1", 3, "undeleted"))
    wait_until(lambda: named(d, "undel-1", "undeleted"), timeout=10, what="the item back after the un-delete")
    answer = d.request('refresh businesses {"business_id": "undel-1"}')
    assert answer["present"] is True and answer["version"] == 3


def test_a_row_edited_behind_the_daemons_back_is_found_repaired_and_counted(seeded, start_daemon):
    """The rolling verify finds a hand edit of cache.db and a deleted row, repairs both, counts them in status."""
    d = start_daemon(extra_env={"SEO_SYNC_VERIFY__ANTI_ENTROPY_PERIOD_HOURS": "0.0005",  # a pass every ~2 s
                                "SEO_SYNC_VERIFY__ANTI_ENTROPY_TICK_SECONDS": "0.2",
                                "SEO_SYNC_VERIFY__ANTI_ENTROPY_ITEMS_PER_SECOND": "500"})
    d.wait_ready()
    truth = cached(d.data_dir, "biz-003")
    assert truth is not None and cached(d.data_dir, "biz-004") is not None
    conn = sqlite3.connect(d.data_dir / "cache.db", timeout=10)
    with conn:
        conn.execute("UPDATE businesses SET name = 'edited by hand' WHERE business_id = 'biz-003'")
        conn.execute("DELETE FROM businesses WHERE business_id = 'biz-004'")
    conn.close()
    assert named(d, "biz-003", "edited by hand")
    wait_until(lambda: cached(d.data_dir, "biz-003") == truth and cached(d.data_dir, "biz-004") is not None,
               timeout=30, what="both rows repaired by the rolling verify")
    status = d.status()
    assert status["anti_entropy"]["businesses"]["differences"] >= 2
    assert status["repairs"]["changed"] >= 2 and status["repairs"]["by_reason"].get("anti-entropy", 0) >= 2
    metrics = request(d.socket_path, "metrics").splitlines()
    assert any(line.startswith('seo_sync_anti_entropy_differences_total{table="businesses"}') for line in metrics)
    wait_until(lambda: d.request("health")["ok"] is True, what="healthy once repaired")


def test_health_is_never_ok_while_a_repair_read_is_pending_and_a_refresh_settles_it(seeded, start_daemon, tmp_path):
    """Two keys left waiting for a repair read (as a crash leaves them), reads slowed to a crawl: health is
    degraded, naming them; a refresh of each settles it and health is ok again."""
    first = start_daemon()
    first.wait_ready()
    first.signal(15)
    assert first.wait_exit() == 0
    conn = sqlite3.connect(tmp_path / "data" / "cache.db")
    with conn:
        conn.executemany("INSERT INTO _sync_repairs (table_name, key, reason, at) VALUES ('businesses', ?, "
                         "'stream', 0)", [('["biz-001"]',), ('["biz-002"]',)])
    conn.close()
    d = start_daemon(extra_env={"SEO_SYNC_VERIFY__REPAIR_READS_PER_SECOND": "0.001",
                                "SEO_SYNC_VERIFY__REPAIR_BURST": "1"})
    d.wait_ready()
    wait_until(lambda: d.status()["repairs"]["done"] == 1, what="the one read the burst allows")
    health = d.request("health")
    assert health["ok"] is False and any("repair reads pending" in r for r in health["reasons"])
    for bid in ("biz-001", "biz-002"):
        assert d.request(f'refresh businesses {{"business_id": "{bid}"}}')["present"] is True
    wait_until(lambda: d.request("health")["ok"] is True, what="healthy once both are settled")
