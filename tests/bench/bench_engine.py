"""Benchmark of the stream engine against the performance contract: apply rate vs raw SQLite, full sync vs scan-only.

    python -m tests.bench.bench_engine [--records 100000] [--items 5000] [--runs 3]

Prints medians of `--runs` runs:
- records applied per second from synthetic stream batches (translate + version-guarded apply +
  checkpoint, 1000 records a transaction) next to raw SQLite `executemany` upserts of the same rows
  in transactions of the same size (targets: >= 50,000/s and <= 1.5x raw);
- a full sync of one table (capture + parallel Scan + shadow + swap) next to merely Scanning it with
  the same segments, against moto's HTTP server (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from seo_sync import codec
from seo_sync.cache.writer import Cache
from seo_sync.changes import to_change
from seo_sync.feed import Checkpoint
from seo_sync.schema import BUSINESSES

BATCH = 1000


def synthetic_records(n: int) -> list[dict]:
    """INSERT/MODIFY records over n/2 keys with increasing _version, like a busy stream."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        key = f"biz-{i % (n // 2):07d}"
        item = {"business_id": {"S": key}, "name": {"S": f"Business {i}"}, "industry": {"S": "plumbing"},
                "phone": {"S": "+1 555 0100"}, "email": {"S": "a@example.com"}, "website": {"S": "https://x.test"},
                "created_at": {"S": "2026-01-01T00:00:00Z"}, "updated_at": {"S": "2026-01-02T00:00:00Z"},
                "_version": {"N": str(i + 1)}, "rating": {"N": "4.5"}}
        out.append({"eventName": "MODIFY" if i >= n // 2 else "INSERT",
                    "dynamodb": {"Keys": {"business_id": {"S": key}}, "NewImage": item,
                                 "SequenceNumber": str(10**21 + i), "ApproximateCreationDateTime": when}})
    return out


def bench_apply(records: list[dict]) -> float:
    """Records/s through changes.to_change + Cache.apply_batch with a checkpoint per batch."""
    with tempfile.TemporaryDirectory() as d:
        cache = Cache.open(Path(d) / "cache.db")
        t = time.perf_counter()
        for i in range(0, len(records), BATCH):
            chunk = records[i:i + BATCH]
            cp = Checkpoint("businesses", "arn", "shard-1", None, chunk[-1]["dynamodb"]["SequenceNumber"])
            cache.apply_batch(BUSINESSES, [to_change(BUSINESSES, r) for r in chunk], cp, shard_id="shard-1")
        elapsed = time.perf_counter() - t
        cache.close()
    return len(records) / elapsed


def bench_raw(records: list[dict]) -> float:
    """Rows/s of raw executemany upserts of the same rows, same transaction size, WAL + NORMAL."""
    cols = BUSINESSES.column_names
    rows = [tuple(codec.item_to_row(BUSINESSES, r["dynamodb"]["NewImage"])[c] for c in cols) for r in records]
    sql = (f"INSERT INTO b ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
           f"ON CONFLICT (business_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols[1:])}")
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(Path(d) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"CREATE TABLE b ({', '.join(cols)}, PRIMARY KEY (business_id)) WITHOUT ROWID")
        t = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            conn.execute("BEGIN")
            conn.executemany(sql, rows[i:i + BATCH])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t
        conn.close()
    return len(rows) / elapsed


def bench_full_sync(items: int, runs: int) -> tuple[float, float]:
    """(median full sync seconds, median scan-only seconds) of one table against moto's server."""
    from seo_sync.aws.tables import Source
    from seo_sync.sync.fullsync import full_sync_table
    from tests.support.moto_server import FAKE_CREDENTIALS, EmbeddedDynamo
    from tests.support.settings import make_settings

    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    server = EmbeddedDynamo().start()
    try:
        with tempfile.TemporaryDirectory() as d:
            settings = make_settings(Path(d), server.endpoint)
            source = Source(settings.aws, settings.table_prefix)
            source.create_table(BUSINESSES)
            source.batch_write(BUSINESSES, [r["dynamodb"]["NewImage"] for r in synthetic_records(items * 2)[:items]])
            cache = Cache.open(settings.cache_path)
            segs = settings.fullsync.scan_segments
            sync_t, scan_t = [], []
            for _ in range(runs):
                t = time.perf_counter()
                n = sum(len(p) for s in range(segs) for p in source.scan(BUSINESSES, s, segs,
                                                                          page_limit=settings.fullsync.batch_size))
                scan_t.append(time.perf_counter() - t)
                assert n == items
                t = time.perf_counter()
                result = full_sync_table(cache, source, BUSINESSES, settings.fullsync, reason="bench")
                sync_t.append(time.perf_counter() - t)
                assert result.rows == items
            cache.close()
    finally:
        server.stop()
    return statistics.median(sync_t), statistics.median(scan_t)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--items", type=int, default=5000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    records = synthetic_records(a.records)
    gc.freeze()  # the daemon holds one page at a time; don't let 100k test records inflate every GC pass
    apply_rate = statistics.median(bench_apply(records) for _ in range(a.runs))
    raw_rate = statistics.median(bench_raw(records) for _ in range(a.runs))
    print(f"apply: {apply_rate:,.0f} records/s   raw SQLite upserts: {raw_rate:,.0f} rows/s   "
          f"ratio raw/apply: {raw_rate / apply_rate:.2f}x  (targets >= 50,000/s, <= 1.5x)")
    sync_s, scan_s = bench_full_sync(a.items, a.runs)
    print(f"full sync of {a.items} items: {sync_s:.2f} s   scan only: {scan_s:.2f} s   "
          f"ratio: {sync_s / scan_s:.2f}x  (target <= 1.2x, moto's server)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
