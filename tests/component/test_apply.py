"""cache.apply_batch: one transaction per batch, version guard, tombstones, dead letters, replay no-op."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seo_sync.cache.reader import Reader
from seo_sync.cache.sql import Checkpoint, key_text
from seo_sync.changes import to_change
from seo_sync.schema import BUSINESSES, KEYWORDS

ARN = "arn:aws:dynamodb:us-east-1:1:table/seo_businesses/stream/x"


def biz(bid: str, version: int | None, name: str = "n", **attrs) -> dict:
    out = {"business_id": {"S": bid}, "name": {"S": name}, **attrs}
    if version is not None:
        out["_version"] = {"N": str(version)}
    return out


def record(event: str, bid: str, new: dict | None = None, old: dict | None = None, seq: int = 100,
           ttl: bool = False) -> dict:
    dyn = {"Keys": {"business_id": {"S": bid}}, "SequenceNumber": str(seq),
           "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=UTC)}
    if new is not None:
        dyn["NewImage"] = new
    if old is not None:
        dyn["OldImage"] = old
    r = {"eventName": event, "dynamodb": dyn}
    if ttl:
        r["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return r


def apply(cache, records, seq="1", shard="s1", spec=BUSINESSES):
    cp = Checkpoint(spec.name, ARN, shard, None, seq)
    return cache.apply_batch(spec, [to_change(spec, r) for r in records], cp, shard_id=shard)


def get(cache, bid):
    return Reader(cache.conn).get(BUSINESSES, (bid,))


def test_stale_version_is_skipped_and_counted(cache):
    """A lower _version than the row's is skipped, counted, and never regresses the row."""
    apply(cache, [record("INSERT", "b1", biz("b1", 5, "five"))])
    res = apply(cache, [record("MODIFY", "b1", biz("b1", 4, "four"))])
    assert res.skipped_stale == 1 and get(cache, "b1")["name"] == {"S": "five"}


def test_equal_version_is_applied_from_the_stream(cache):
    """An equal _version with different content is applied (a write that did not bump _version)."""
    apply(cache, [record("INSERT", "b1", biz("b1", 5, "a"))])
    res = apply(cache, [record("MODIFY", "b1", biz("b1", 5, "b"))])
    assert res.skipped_stale == 0 and get(cache, "b1")["name"] == {"S": "b"}


def test_missing_version_falls_back_to_stream_order(cache):
    """Without _version on either side the last record wins."""
    apply(cache, [record("INSERT", "b1", biz("b1", None, "a"))])
    apply(cache, [record("MODIFY", "b1", biz("b1", None, "b"))])
    assert get(cache, "b1")["name"] == {"S": "b"}
    apply(cache, [record("MODIFY", "b1", biz("b1", 3, "c"))])
    apply(cache, [record("MODIFY", "b1", biz("b1", None, "d"))])
    assert get(cache, "b1")["name"] == {"S": "d"}


def test_hard_delete_writes_tombstone_that_stops_an_older_replay(cache):
    """REMOVE deletes the row; a replayed older INSERT-less MODIFY cannot bring it back."""
    apply(cache, [record("INSERT", "b1", biz("b1", 2))])
    apply(cache, [record("REMOVE", "b1", old=biz("b1", 2))])
    assert get(cache, "b1") is None
    res = apply(cache, [record("MODIFY", "b1", biz("b1", 1))])
    assert get(cache, "b1") is None and res.skipped_stale == 1


def test_item_recreated_after_hard_delete_comes_back(cache):
    """An INSERT after a hard delete re-creates the item even if its _version restarted."""
    apply(cache, [record("INSERT", "b1", biz("b1", 4))])
    apply(cache, [record("REMOVE", "b1", old=biz("b1", 4))])
    apply(cache, [record("INSERT", "b1", biz("b1", 1, "again"))])
    assert get(cache, "b1")["name"] == {"S": "again"}


def test_soft_delete_hides_row_and_blocks_older_versions(cache):
    """MODIFY with _deleted true removes the row; an older version replayed stays out."""
    apply(cache, [record("INSERT", "b1", biz("b1", 1))])
    apply(cache, [record("MODIFY", "b1", biz("b1", 2, _deleted={"BOOL": True}))])
    assert get(cache, "b1") is None
    apply(cache, [record("MODIFY", "b1", biz("b1", 1))])
    assert get(cache, "b1") is None
    apply(cache, [record("MODIFY", "b1", biz("b1", 3, "restored"))])
    assert get(cache, "b1")["name"] == {"S": "restored"}


def test_ttl_delete_is_counted(cache):
    """A TTL REMOVE deletes the row and counts as a TTL delete."""
    apply(cache, [record("INSERT", "b1", biz("b1", 1))])
    res = apply(cache, [record("REMOVE", "b1", old=biz("b1", 1), ttl=True)])
    assert res.ttl_deletes == 1 and res.deleted == 1 and get(cache, "b1") is None


def test_older_delete_does_not_remove_newer_row(cache):
    """A REMOVE whose old image is older than the row is skipped."""
    apply(cache, [record("INSERT", "b1", biz("b1", 6))])
    res = apply(cache, [record("REMOVE", "b1", old=biz("b1", 5))])
    assert res.skipped_stale == 1 and get(cache, "b1") is not None


def test_duplicate_records_batch_replay_is_a_noop(cache):
    """Applying the same batch twice leaves rows, tombstones and checkpoint identical."""
    batch = [record("INSERT", "b1", biz("b1", 1), seq=1), record("MODIFY", "b1", biz("b1", 2), seq=2),
             record("INSERT", "b2", biz("b2", 1), seq=3), record("REMOVE", "b2", old=biz("b2", 1), seq=4)]
    apply(cache, batch, seq="4")

    def dump():
        c = cache.conn
        return (c.execute("SELECT * FROM businesses ORDER BY 1").fetchall(),
                c.execute("SELECT table_name, key, version, hard FROM _sync_tombstones ORDER BY 2").fetchall(),
                c.execute("SELECT shard_id, sequence_number FROM _sync_checkpoints").fetchall())

    before = dump()
    apply(cache, batch, seq="4")
    assert dump() == before


def test_out_of_order_records_older_image_after_newer_refresh(cache):
    """The write path's refresh put v5 in the cache; the stream's later v4 record is skipped."""
    cache.apply_item(BUSINESSES, ("b1",), biz("b1", 5, "fresh"))
    res = apply(cache, [record("MODIFY", "b1", biz("b1", 4, "old"))])
    assert res.skipped_stale == 1 and get(cache, "b1")["name"] == {"S": "fresh"}


def test_malformed_records_go_to_dead_letters_with_the_checkpoint(cache):
    """Dead letters and the checkpoint past them commit together; good records in the batch apply."""
    bad = record("INSERT", "b1", biz("b1", 1, score={"N": "9" * 40}), seq=10)
    good = record("INSERT", "b2", biz("b2", 1), seq=11)
    res = apply(cache, [bad, good], seq="11")
    assert res.dead == 1 and get(cache, "b2") is not None and get(cache, "b1") is None
    assert cache.dead_letter_count("businesses") == 1
    assert cache.checkpoints("businesses")[0].sequence_number == "11"


def test_failed_batch_rolls_back_rows_and_checkpoint(cache, monkeypatch):
    """When the transaction fails, neither the rows nor the checkpoint move: they commit together or not at all."""
    apply(cache, [record("INSERT", "b1", biz("b1", 1))], seq="1")

    def boom(*a, **k):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(cache, "_write_checkpoints", boom)
    with pytest.raises(Exception):  # noqa: B017 - any CacheError subclass
        apply(cache, [record("INSERT", "b2", biz("b2", 1))], seq="2")
    monkeypatch.undo()
    assert get(cache, "b2") is None
    assert cache.checkpoints("businesses")[0].sequence_number == "1"


def test_400kb_items_apply_and_round_trip(cache):
    """A 400 KB item (and a batch of them) applies and reads back byte-identical."""
    big = "x" * 400_000
    items = [biz(f"b{i}", 1, template={"S": big + str(i)}) for i in range(5)]
    apply(cache, [record("INSERT", f"b{i}", it) for i, it in enumerate(items)])
    for i, it in enumerate(items):
        assert get(cache, f"b{i}") == it


def test_composite_keys_apply_per_key(cache):
    """keywords rows are keyed by (business_id, keyword_id)."""
    def kw(k, v):
        keys = {"business_id": {"S": "b1"}, "keyword_id": {"S": k}}
        return {"eventName": "INSERT", "dynamodb": {"Keys": keys, "SequenceNumber": "1",
                                                    "NewImage": {**keys, "keyword": {"S": v}}}}
    apply(cache, [kw("a#en", "a"), kw("b#en", "b"), kw("a#en", "a2")], spec=KEYWORDS)
    rows = list(Reader(cache.conn).rows(KEYWORDS))
    assert [(r["keyword_id"], r["keyword"]) for r in rows] == [("a#en", "a2"), ("b#en", "b")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=8), min_size=1, max_size=2))
def test_key_text_fast_path_matches_json(key):
    """The tombstone key text of the hot path is exactly json.dumps of the key."""
    assert key_text(tuple(key)) == json.dumps(key, ensure_ascii=False, separators=(",", ":"))
