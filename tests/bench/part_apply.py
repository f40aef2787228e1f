"""Part 2: apply throughput. Stream batches through the real apply path vs raw SQLite upserts.

The apply path is what the daemon's writer runs for every GetRecords page: `writer.apply_batch`,
that is `changes.to_change` for each record, then `Cache.apply_batch` (rows, tombstones and the
shard checkpoint in one transaction). The raw baseline is the SQLite limit: the same rows, already converted, upserted
with one `executemany` in one transaction. Both write to a fresh file-backed WAL database with
the same pragmas, in the same run, so the ratio compares like with like.
"""

from __future__ import annotations

import datetime as dt
import gc
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seo_sync import codec
from seo_sync.cache import changelog
from seo_sync.cache.sql import q
from seo_sync.cache.writer import Cache
from seo_sync.changes import to_change
from seo_sync.codec import Item
from seo_sync.feed import Checkpoint
from seo_sync.schema import TABLES, TableSpec
from seo_sync.sync.tailer import Batch
from seo_sync.sync.writer import apply_batch
from tests.bench.common import PartResult, Target
from tests.bench.datagen import make_dataset
from tests.bench.profiles import call_tree
from tests.bench.stats import ratios, summarize

BATCH = 1000  # records in one GetRecords page at most
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/seo_{t}/stream/2026-01-01T00:00:00.000"


def _record(table: str, event: str, keys: Item, new: Item, old: Item | None, seq: int) -> dict[str, Any]:
    dyn: dict[str, Any] = {
        "ApproximateCreationDateTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "Keys": keys, "NewImage": new, "SequenceNumber": f"{seq:021d}", "SizeBytes": 400,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        dyn["OldImage"] = old
    return {"eventID": f"ev{seq}", "eventName": event, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": dyn}


def make_batches(target_records: int, seed: int = 11) -> list[tuple[str, list[dict[str, Any]]]]:
    """Stream pages as GetRecords returns them: per table, INSERTs of every item, then a MODIFY each.

    Half the records are INSERTs and half MODIFYs of the same items (a changed `updated_at` or
    `created_at`), in pages of up to 1,000 records of one table, sequence numbers increasing.
    """
    ds = make_dataset(max(1, target_records // 2), seed)
    pages: list[tuple[str, list[dict[str, Any]]]] = []
    seq = 10**20
    for table, items in ds.items.items():
        spec = TABLES[table]
        inserts, modifies = [], []
        for it in items:
            keys = {k: it[k] for k in spec.key_names}
            seq += 1
            inserts.append(_record(table, "INSERT", keys, it, None, seq))
        for it in items:
            keys = {k: it[k] for k in spec.key_names}
            changed = dict(it)
            field_name = "updated_at" if "updated_at" in it else "created_at"
            changed[field_name] = {"S": "2026-02-02T02:02:02Z"}
            if "_version" in it:
                changed["_version"] = {"N": str(int(it["_version"]["N"]) + 1)}
            seq += 1
            modifies.append(_record(table, "MODIFY", keys, changed, it, seq))
        for records in (inserts, modifies):
            for i in range(0, len(records), BATCH):
                pages.append((table, records[i:i + BATCH]))
    return pages


def _daemon_apply() -> Callable[[Cache, TableSpec, str, list[dict[str, Any]], Checkpoint], object]:
    """The daemon writer's own apply function (writer.apply_batch)."""
    def tailer_apply(cache: Cache, spec: TableSpec, table: str, records: list[dict[str, Any]],
                     cp: Checkpoint) -> object:
        return apply_batch(cache, spec, Batch(table, 0, cp.shard_id, records, cp))
    return tailer_apply


def run_apply_path(db_path: Path, pages: list[tuple[str, list[dict[str, Any]]]]) -> float:
    """Seconds to apply every page the way the daemon's writer does (one transaction a page)."""
    apply = _daemon_apply()
    cache = Cache.open(db_path)
    try:
        start = time.perf_counter()
        for table, records in pages:
            cp = Checkpoint(table, STREAM_ARN.format(t=table), "shardId-00000001-bench",
                            sequence_number=records[-1]["dynamodb"]["SequenceNumber"])
            apply(cache, TABLES[table], table, records, cp)
        return time.perf_counter() - start
    finally:
        cache.close()


@contextmanager
def change_log_off() -> Iterator[None]:
    """The apply path with its change-log writes left out: the baseline the log's cost is measured against."""
    record = changelog.record
    changelog.record = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        yield
    finally:
        changelog.record = record


def change_log_size(db_path: Path) -> tuple[int, int]:
    """(entries, bytes of its b-tree pages) of the change log in `db_path`."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)  # a running daemon's cache too
    try:
        rows = int(conn.execute("SELECT count(*) FROM _sync_changes").fetchone()[0])
        size = int(conn.execute(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = '_sync_changes'").fetchone()[0])
        return rows, size
    finally:
        conn.close()


def raw_rows(pages: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The same rows the apply path writes, converted ahead of time (the raw baseline measures SQLite only)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, records in pages:
        spec = TABLES[table]
        cols = spec.column_names
        for r in records:
            row = codec.item_to_row(spec, r["dynamodb"]["NewImage"])
            out.setdefault(table, []).append(tuple(row[c] for c in cols))
    return out


def run_raw(db_path: Path, rows: dict[str, list[tuple[Any, ...]]], per_transaction: int | None = None) -> float:
    """Seconds to upsert every row with executemany in one transaction, or one per `per_transaction` rows."""
    Cache.open(db_path).close()  # identical tables and pragmas to the apply path's database
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        start = time.perf_counter()
        if per_transaction is None:
            conn.execute("BEGIN IMMEDIATE")
        for table, table_rows in rows.items():
            spec = TABLES[table]
            cols = spec.column_names
            updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in cols if c not in spec.key_names)
            sql = (f"INSERT INTO {q(spec.name)} ({', '.join(q(c) for c in cols)}) "
                   f"VALUES ({', '.join('?' for _ in cols)}) "
                   f"ON CONFLICT ({', '.join(q(k) for k in spec.key_names)}) DO UPDATE SET {updates}")
            if per_transaction is None:
                conn.executemany(sql, table_rows)
                continue
            for i in range(0, len(table_rows), per_transaction):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, table_rows[i:i + per_transaction])
                conn.execute("COMMIT")
        if per_transaction is None:
            conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def decode_only(pages: list[tuple[str, list[dict[str, Any]]]]) -> float:
    """Seconds spent in to_change alone: validating each record and building its row, as the apply path does."""
    start = time.perf_counter()
    for table, records in pages:
        spec = TABLES[table]
        for r in records:
            to_change(spec, r)  # builds the cache row too (Change.row), exactly once, as in the apply path
    return time.perf_counter() - start


def _measure(work: Path, pages: list[tuple[str, list[dict[str, Any]]]], rows: dict[str, list[tuple[Any, ...]]],
             reps: int, times: dict[str, list[float]]) -> None:
    """Each rep: the apply path, raw in one transaction, raw per page-sized transaction, decode alone."""
    applied, raw = times["apply"], times["raw"]
    for rep in range(reps):
        rep_dir = work / f"apply-{rep}"
        rep_dir.mkdir(parents=True, exist_ok=True)
        # Alternate the order so neither side always runs on a warmer page cache.
        if rep % 2 == 0:
            applied.append(run_apply_path(rep_dir / "apply.db", pages))
            raw.append(run_raw(rep_dir / "raw.db", rows))
        else:
            raw.append(run_raw(rep_dir / "raw.db", rows))
            applied.append(run_apply_path(rep_dir / "apply.db", pages))
        with change_log_off():
            times["apply_no_log"].append(run_apply_path(rep_dir / "apply-no-log.db", pages))
        times["raw_paged"].append(run_raw(rep_dir / "raw-paged.db", rows, BATCH))
        times["decode"].append(decode_only(pages))


def run(work: Path, records: int, reps: int, out: Path | None = None) -> PartResult:
    """Measure apply throughput `reps` times on `records` synthetic stream records, then profile one pass.

    The profile's interactive form goes to `out`/bench-profile-apply.html when `out` is given.
    """
    part = PartResult("apply", "2. Apply throughput")
    started = time.perf_counter()
    pages = make_batches(records)
    n = sum(len(r) for _, r in pages)
    rows = raw_rows(pages)
    times: dict[str, list[float]] = {"apply": [], "apply_no_log": [], "raw": [], "raw_paged": [], "decode": []}
    # The daemon holds one page at a time; without this, every collection would also walk the
    # whole synthetic stream held here and charge the apply path for the benchmark's own memory.
    gc.collect()
    gc.freeze()
    try:
        _measure(work, pages, rows, reps, times)
    finally:
        gc.unfreeze()
    applied, raw = times["apply"], times["raw"]
    apply_rate = part.add("apply path records/s", summarize([n / t for t in applied]), "records/s")
    part.add("raw executemany rows/s, one transaction", summarize([n / t for t in raw]), "rows/s")
    ratio = part.add("apply time / raw time (same run)", summarize(ratios(applied, raw)), "x")
    part.add(f"raw executemany rows/s, one transaction per {BATCH:,} rows (informative)",
             summarize([n / t for t in times["raw_paged"]]), "rows/s")
    part.add("decode only (to_change: validate + build the row) records/s (informative)",
             summarize([n / t for t in times["decode"]]), "records/s")
    part.add("apply path without the change log records/s", summarize([n / t for t in times["apply_no_log"]]),
             "records/s")
    log_cost = part.add("apply time with the change log / without (same run)",
                        summarize(ratios(applied, times["apply_no_log"])), "x")
    entries, log_bytes = change_log_size(work / "apply-0" / "apply.db")
    part.add("change log: bytes per entry (b-tree pages / entries)", summarize([log_bytes / max(1, entries)]), "B")
    part.targets.append(Target("apply throughput", apply_rate.median, ">=", 50_000, "records/s"))
    part.targets.append(Target("apply time with the change log / without", log_cost.median, "<=", 1.10, "x"))
    part.targets.append(Target("apply time / raw upsert time", ratio.median, "<=", 1.5, "x"))
    part.notes.append(f"{n:,} records ({n // 2:,} INSERT + {n // 2:,} MODIFY) in {len(pages)} pages of up to "
                      f"{BATCH} records of one table; apply = the daemon's writer.apply_batch (to_change + "
                      "Cache.apply_batch with the checkpoint), one transaction a page; raw = the same rows "
                      "pre-converted, one executemany per table "
                      "in one transaction; both WAL + synchronous=NORMAL on a file. The synthetic stream is "
                      "built first and frozen out of the garbage collector (gc.freeze), as the daemon holds "
                      "one page at a time.")
    per_record = {k: statistics.median(v) / n * 1e6 for k, v in times.items()}
    part.add("apply path: microseconds per record", summarize([t / n * 1e6 for t in applied]), "us")
    part.add("of which decoding (to_change: validate + build the row): microseconds per record",
             summarize([t / n * 1e6 for t in times["decode"]]), "us")
    part.add("raw upsert: microseconds per row", summarize([t / n * 1e6 for t in raw]), "us")
    part.notes.append(
        f"Where the apply time goes (medians): {per_record['apply']:.1f} us a record, of which decoding the "
        f"record (validate every attribute, build the row) is {per_record['decode']:.1f} us and writing it "
        f"(SQLite upsert with the _version guard, collapse, checkpoint, one commit a page) the remaining "
        f"{max(0.0, per_record['apply'] - per_record['decode']):.1f} us. The raw upsert of a pre-converted row "
        f"costs {per_record['raw']:.1f} us in one transaction and {per_record['raw_paged']:.1f} us with a commit "
        "every 1,000 rows (exactly-once needs each page to commit with its checkpoint). Decoding alone is "
        f"{per_record['decode'] / per_record['raw']:.2f} x the raw time: an apply path that validates DynamoDB's "
        "JSON in CPython cannot reach 1.5 x raw here unless decoding moves to C; the profile below shows the "
        "same split.")
    profile_dir = work / "apply-profile"
    profile_dir.mkdir(parents=True, exist_ok=True)
    html = out / "bench-profile-apply.html" if out is not None else None
    _, tree = call_tree(lambda: run_apply_path(profile_dir / "apply.db", pages), html)
    part.blocks.append(("pyinstrument profile of one apply pass (share of its wall time)", tree))
    part.raw = {"records": n, "pages": len(pages), **{f"{k}_seconds": v for k, v in times.items()},
                "microseconds_per_record": per_record}
    part.seconds = time.perf_counter() - started
    return part
