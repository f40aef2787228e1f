"""A reader that holds a read transaction while the cache is rewritten lets the WAL grow: health warns
while it is large, and once the reader lets go the WAL is cut back, without a restart."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from seo_sync import codec
from seo_sync.schema import TABLES
from tests.support.harness import cache_counts, wait_until

LARGE = 4 * 1024 * 1024
BIG_ITEMS = 400  # businesses of about 16 KB each: a resync rewrites some 7 MB


def _wal(d) -> int:
    return (d.data_dir / "cache.db-wal").stat().st_size


@pytest.mark.slow
def test_wal_grown_under_a_long_reader_is_cut_back_within_a_minute_and_warned_about(seeded, start_daemon):
    """A read transaction held across a full resync: the WAL passes 4 MB and health says why; a minute
    after the reader ends the WAL is under 4 MB again."""
    blob = "x" * 16_000
    seeded.batch_write(TABLES["businesses"], [codec.item_from_python(
        {"business_id": f"big-{i:04d}", "name": blob, "_version": 1}) for i in range(BIG_ITEMS)])
    d = start_daemon(extra_env={"SEO_SYNC_MAINTENANCE__WAL_CHECKPOINT_CRON": "* * * * *"})
    d.wait_ready()
    held = sqlite3.connect(f"file:{d.data_dir / 'cache.db'}?mode=ro", uri=True, isolation_level=None)
    try:
        held.execute("BEGIN")
        assert held.execute("SELECT count(*) FROM businesses").fetchone()[0] == 20 + BIG_ITEMS
        before = {name: t["last_full_sync"] for name, t in d.status()["tables"].items()}
        d.signal(signal.SIGHUP)
        wait_until(lambda: all(t["last_full_sync"] != before[n] and t["state"] == "streaming"
                               for n, t in d.status()["tables"].items()), timeout=120, what="resync under the reader")
        grown = _wal(d)
        assert grown > LARGE, grown
        wait_until(lambda: any("WAL" in r for r in d.request("health")["reasons"]), timeout=60,
                   what="health warns about the WAL")
    finally:
        held.execute("COMMIT")
        held.close()
    released = time.monotonic()
    for i in range(3):  # writes go on: the WAL restarts from its beginning and is cut back at a commit
        seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": f"after-{i}", "_version": 1}))
        wait_until(lambda i=i: cache_counts(d.data_dir)["businesses"] == 21 + BIG_ITEMS + i,
                   what="a write after the reader")
    wait_until(lambda: _wal(d) < LARGE, timeout=75, what="WAL under 4 MB again")
    shrunk_after = time.monotonic() - released
    print(f"WAL {grown / 1e6:.1f} MB under the reader; {_wal(d) / 1e6:.2f} MB {shrunk_after:.1f}s after it let go")
    assert shrunk_after <= 60.0
    wait_until(lambda: not any("WAL" in r for r in d.request("health")["reasons"]), what="the warning gone")
