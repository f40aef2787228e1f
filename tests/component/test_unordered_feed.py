"""A change feed without per-item order (Kinesis Data Streams for DynamoDB): records out of order, duplicated,
split into random batches, end with the cache equal to DynamoDB once the repair reads asked for are done."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.changes import to_change
from seo_sync.order import collapse_unordered
from seo_sync.schema import BUSINESSES

START_US = 1_800_000_000_000_000
OPS = ("write", "soft", "undelete", "hard", "reset")


def history(ops: list[tuple[int, str]], versioned: bool) -> tuple[list[dict[str, Any]], dict[str, dict | None]]:
    """DynamoDB's records for `ops` (one per change, creation times strictly increasing) and its final items."""
    items: dict[str, dict | None] = {}
    versions: dict[str, int] = {}
    records: list[dict[str, Any]] = []
    for n, (k, op) in enumerate(ops):
        bid = f"b{k}"
        old = items.get(bid)
        if op == "hard":
            if old is None:
                continue
            items[bid], event, image = None, "REMOVE", {"OldImage": old}
        else:
            versions[bid] = 1 if op == "reset" or bid not in versions else versions[bid] + (op != "undelete")
            new = {"business_id": {"S": bid}, "name": {"S": f"{op}{n}"}}
            if versioned:
                new["_version"] = {"N": str(versions[bid])}
            if op == "soft":
                new["_deleted"] = {"BOOL": True}
            items[bid], event, image = new, "INSERT" if old is None else "MODIFY", {"NewImage": new}
        created = datetime.fromtimestamp((START_US + n * 1000) / 1_000_000, UTC)
        records.append({"eventName": event, "dynamodb": {"Keys": {"business_id": {"S": bid}}, "SequenceNumber": str(n),
                                                         "ApproximateCreationDateTime": created, **image}})
    return records, items


def deliver(cache: Cache, records: list[dict], truth: dict[str, dict | None], cuts: list[int]) -> int:
    """Apply `records` in the given order and batch cuts as an unordered feed; do every repair read asked for."""
    read_at = START_US / 1_000_000 + 3600  # DynamoDB answers after every write of the history
    repairs, start = 0, 0
    for end in [*sorted(set(cuts)), len(records)]:
        batch = records[start:end]
        start = max(start, end)
        if not batch:
            continue
        res = cache.apply_batch(BUSINESSES, [to_change(BUSINESSES, r) for r in batch], None, ordered=False)
        for key in res.repair:
            repairs += 1
            cache.apply_item(BUSINESSES, key, truth.get(key[0]), read_at=read_at)
    return repairs


def live(truth: dict[str, dict | None]) -> dict[str, dict]:
    return {k: v for k, v in truth.items() if v is not None and "_deleted" not in v}


histories = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(OPS)), min_size=1, max_size=14)


@settings(max_examples=80, deadline=None)
@given(ops=histories, versioned=st.booleans(), data=st.data())
def test_shuffled_duplicated_batches_end_equal_to_dynamodb(ops, versioned, data):
    """Any history (writes, soft and hard deletes, un-deletes, version resets), shuffled, duplicated, re-batched."""
    records, truth = history(ops, versioned)
    dups = data.draw(st.lists(st.sampled_from(records), max_size=4)) if records else []
    delivered = data.draw(st.permutations(records + dups))
    cuts = data.draw(st.lists(st.integers(0, len(delivered)), max_size=4))
    tmp = Path(tempfile.mkdtemp(prefix="unordered-"))
    cache = Cache.open(tmp / "cache.db")
    try:
        deliver(cache, delivered, truth, cuts)
        got = {it["business_id"]["S"]: it for it in Reader(cache.conn).items(BUSINESSES)}
        assert got == live(truth)
    finally:
        cache.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_in_order_history_without_resets_needs_no_repair_read(cache):
    """Writes and deletes whose versions rise with time, delivered backwards: the newest wins, no read asked."""
    records, truth = history([(0, "write"), (0, "write"), (0, "soft"), (0, "write"), (1, "write")], True)
    assert deliver(cache, list(reversed(records)), truth, [1, 2, 3, 4]) == 0
    assert {it["business_id"]["S"] for it in Reader(cache.conn).items(BUSINESSES)} == set(live(truth))


def test_a_version_reset_is_ordered_by_time_in_one_batch():
    """v2 then a reset to v1 created later: the reset is the newest change, whatever its version; no doubt."""
    records, _ = history([(0, "write"), (0, "write"), (0, "reset")], True)
    chosen, doubts = collapse_unordered([to_change(BUSINESSES, r) for r in records])
    assert doubts == set() and chosen[0].version == 1
