"""The processes of the lag measurement: a writer, a reader, and the plain 1-second poller baseline.

Each runs in its own process (`python -m tests.bench.lagproc writer|reader|poller ...`) so none
shares a GIL with what it measures. Times are `time.monotonic()`, which is CLOCK_MONOTONIC: one
clock for every process on the machine.

The writer changes one business ("bench-lag") at a steady rate with plain boto3 calls: UpdateItem
on its business and questionnaire items, PutItem of new keywords, service areas and templates.
Change number n carries the mark n: in `updated_at` for the two updated items, in the sort key
(`lag-00000042...`) for new items. The reader polls the cache read-only, as the generation server
would, and records when each mark first becomes visible.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

LAG_BUSINESS = "bench-lag"
# Change n goes to table OPS[n % 10]: 30% updates of existing items, 70% puts of new ones.
OPS = ("businesses", "businesses", "questionnaires", "keywords", "keywords", "keywords", "keywords",
       "service_areas", "service_areas", "prompt_templates")
UPDATED = ("businesses", "questionnaires")
SORT_KEY = {"keywords": "keyword_id", "service_areas": "area_id", "prompt_templates": "template_id"}


def mark(n: int) -> str:
    """The text form of change number n (sorts like n)."""
    return f"lag-{n:08d}"


def sort_key_for(table: str, n: int) -> str:
    """The sort key of the item change n creates in a table of new items."""
    if table == "keywords":
        return f"{mark(n)}#en"
    if table == "prompt_templates":
        return f"lag#{n:08d}"
    return mark(n)


def mark_of(table: str, text: str) -> int | None:
    """Change number carried by a mark or a sort key, None for anything else."""
    if table == "prompt_templates" and text.startswith("lag#"):
        digits = text[4:12]
    elif text.startswith("lag-"):
        digits = text[4:12]
    else:
        return None
    return int(digits) if digits.isdigit() else None


def _s(v: str) -> dict[str, str]:
    return {"S": v}


def new_item(table: str, n: int) -> dict[str, Any]:
    """The item change n puts into a table of new items."""
    key = sort_key_for(table, n)
    base: dict[str, Any] = {"business_id": _s(LAG_BUSINESS), SORT_KEY[table]: _s(key),
                            "created_at": _s(mark(n)), "_deleted": {"BOOL": False}}
    if table == "keywords":
        base.update(slug=_s(mark(n)), keyword=_s(f"emergency plumber {n}"), language=_s("en"),
                    search_intent=_s("transactional"))
    elif table == "service_areas":
        base.update(slug=_s(key), city=_s("Austin"), state=_s("TX"), country=_s("US"), county=_s("Travis"),
                    priority={"N": str(n % 10)}, updated_at=_s(mark(n)))
    else:
        base.update(page_type=_s("lag"), version={"N": str(n)}, template=_s("Write about {{city}}. " * 20),
                    required_variables={"L": [_s("city")]}, optional_variables={"L": []},
                    word_count_target={"N": "800"}, is_active={"BOOL": True})
    return base


def seed(ddb: Any, prefix: str) -> None:
    """Create the business and questionnaire items the writer updates (mark 0)."""
    ddb.put_item(TableName=f"{prefix}businesses", Item={
        "business_id": _s(LAG_BUSINESS), "name": _s("Lag Bench Plumbing"), "industry": _s("plumbing"),
        "created_at": _s(mark(0)), "updated_at": _s(mark(0)), "_version": {"N": "1"}, "_deleted": {"BOOL": False}})
    ddb.put_item(TableName=f"{prefix}questionnaires", Item={
        "business_id": _s(LAG_BUSINESS), "data": {"M": {"services": {"L": [_s("drain cleaning")]}}},
        "completeness_score": {"N": "50"}, "created_at": _s(mark(0)), "updated_at": _s(mark(0)),
        "_version": {"N": "1"}})


def write_one(ddb: Any, prefix: str, n: int) -> str:
    """Apply change n with one boto3 call; returns its table."""
    table = OPS[n % len(OPS)]
    if table in UPDATED:
        ddb.update_item(TableName=f"{prefix}{table}", Key={"business_id": _s(LAG_BUSINESS)},
                        UpdateExpression="SET updated_at = :m, #v = #v + :one",
                        ExpressionAttributeNames={"#v": "_version"},
                        ExpressionAttributeValues={":m": _s(mark(n)), ":one": {"N": "1"}})
    else:
        ddb.put_item(TableName=f"{prefix}{table}", Item=new_item(table, n))
    return table


def writer(args: argparse.Namespace) -> None:
    """Write at a steady rate for a fixed time; dump (n, table, sent, acknowledged) to --out."""
    from tests.bench.ddb import client

    ddb = client(args.endpoint)
    if args.seed:
        seed(ddb, args.prefix)
    start = time.monotonic()
    total = int(args.rate * args.seconds)
    rows = []
    for i in range(total):
        n = args.first + i
        due = start + i / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic()
        table = write_one(ddb, args.prefix, n)
        rows.append((n, table, sent, time.monotonic()))
        if i == 0 and args.started:
            Path(args.started).write_text(str(rows[0][3]))  # tells the parent the steady writing has begun
    Path(args.out).write_text(json.dumps({"writes": rows, "start": start, "end": time.monotonic()}))


def _open_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 1000")
    return conn


def look(conn: sqlite3.Connection, last_mark: dict[str, int], last_key: dict[str, str]) -> list[tuple[str, int]]:
    """The writes the cache shows past `last_mark` / `last_key`, as (table, n); advances both."""
    found: list[tuple[str, int]] = []
    for table in UPDATED:
        row = conn.execute(f"SELECT updated_at FROM {table} WHERE business_id = ?", (LAG_BUSINESS,)).fetchone()
        n = mark_of(table, row[0]) if row and row[0] else None
        if n is not None and n > last_mark[table]:
            last_mark[table] = n
            found.append((table, n))
    for table, col in SORT_KEY.items():
        rows = conn.execute(f"SELECT {col} FROM {table} WHERE business_id = ? AND {col} > ? "
                            f"ORDER BY {col}", (LAG_BUSINESS, last_key[table])).fetchall()
        for (key,) in rows:
            n = mark_of(table, key)
            if n is not None:
                found.append((table, n))
        if rows:
            last_key[table] = rows[-1][0]
    return found


def fresh_marks() -> tuple[dict[str, int], dict[str, str]]:
    """`look`'s starting point: nothing seen yet."""
    return {t: 0 for t in UPDATED}, {t: sort_key_for(t, 0) for t in SORT_KEY}


def reader(args: argparse.Namespace) -> None:
    """Poll the cache read-only every --interval seconds until --stop-file exists; dump (table, n, seen)."""
    db = Path(args.db)
    stop_file = Path(args.stop_file)
    deadline = time.monotonic() + args.seconds
    seen: list[tuple[str, int, float]] = []
    last_mark, last_key = fresh_marks()
    conn: sqlite3.Connection | None = None
    data_version = None
    polls = loops = 0
    stopping = False
    while time.monotonic() < deadline and not stopping:
        time.sleep(args.interval)
        loops += 1
        # Told to stop: one more look first, so what was visible when the stop file appeared is recorded.
        stopping = loops % 50 == 0 and stop_file.exists()
        try:
            if conn is None:
                if not db.exists():
                    continue
                conn = _open_ro(db)
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == data_version:
                continue  # nothing committed since the last look: skip the queries
            polls += 1
            now = time.monotonic()
            seen.extend((table, n, now) for table, n in look(conn, last_mark, last_key))
            data_version = version
        except sqlite3.Error:
            data_version = None  # a table mid-swap or the file not ready: look again next time
    Path(args.out).write_text(json.dumps({"seen": seen, "polls": polls}))


def poller(args: argparse.Namespace) -> None:
    """The baseline: poll every shard once, apply what came, sleep --interval, repeat."""
    from seo_sync.cache.writer import Cache
    from seo_sync.changes import to_change
    from seo_sync.feed import Checkpoint
    from seo_sync.schema import TABLES
    from tests.bench.ddb import source

    src = source(args.endpoint, args.prefix)
    cache = Cache.open(Path(args.db))
    shards = []
    for spec in TABLES.values():
        arn = src.describe_table(spec).stream_arn
        for shard in src.streams.describe_stream(arn).shards:
            if not shard.closed:
                shards.append([spec, arn, shard.shard_id, src.streams.shard_iterator(arn, shard.shard_id, "LATEST")])
    Path(args.ready).write_text("ready")
    deadline = time.monotonic() + args.seconds
    applied = 0
    while time.monotonic() < deadline:
        for entry in shards:
            spec, arn, shard_id, iterator = entry
            page = src.streams.get_records(iterator)
            entry[3] = page.next_iterator or iterator
            if page.records:
                changes = [to_change(spec, r) for r in page.records]
                cp = Checkpoint(spec.name, arn, shard_id, sequence_number=changes[-1].seq)
                applied += cache.apply_batch(spec, changes, cp, shard_id=shard_id).records
        time.sleep(args.interval)
    cache.close()
    Path(args.out).write_text(json.dumps({"get_records": src.streams.get_records_calls, "applied": applied}))


def main(argv: list[str] | None = None) -> None:
    """Dispatch to the writer, the reader or the poller."""
    p = argparse.ArgumentParser(prog="python -m tests.bench.lagproc")
    sub = p.add_subparsers(dest="role", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--endpoint", required=True)
    w.add_argument("--prefix", default="seo_")
    w.add_argument("--rate", type=float, default=50.0)
    w.add_argument("--seconds", type=float, default=60.0)
    w.add_argument("--first", type=int, default=1)
    w.add_argument("--seed", action="store_true")
    w.add_argument("--started", help="file written once the first write is acknowledged")
    w.add_argument("--out", required=True)
    r = sub.add_parser("reader")
    r.add_argument("--db", required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--interval", type=float, default=0.002)
    r.add_argument("--stop-file", required=True)
    r.add_argument("--out", required=True)
    o = sub.add_parser("poller")
    o.add_argument("--endpoint", required=True)
    o.add_argument("--prefix", default="seo_")
    o.add_argument("--db", required=True)
    o.add_argument("--interval", type=float, default=1.0)
    o.add_argument("--seconds", type=float, required=True)
    o.add_argument("--ready", required=True)
    o.add_argument("--out", required=True)
    args = p.parse_args(argv)
    {"writer": writer, "reader": reader, "poller": poller}[args.role](args)


if __name__ == "__main__":
    main()
