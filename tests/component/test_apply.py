"""cache.apply_batch: one transaction per batch, stream order, marks of direct reads, dead letters, replay no-op."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seo_sync.cache.reader import Reader
from seo_sync.cache.sql import key_text
from seo_sync.changes import to_change
from seo_sync.feed import Checkpoint
from seo_sync.schema import BUSINESSES, KEYWORDS
from tests.support.items import biz

ARN = "arn:aws:dynamodb:us-east-1:1:table/seo_businesses/stream/x"


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


def test_lower_version_later_in_the_stream_is_newer(cache):
    """A later record of the same shard is newer even with a lower _version (a foreign writer reset it)."""
    apply(cache, [record("INSERT", "b1", biz("b1", 5, "five"))])
    res = apply(cache, [record("MODIFY", "b1", biz("b1", 4, "four"))])
    assert res.skipped_stale == 0 and get(cache, "b1")["name"] == {"S": "four"}


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


def test_hard_delete_writes_a_tombstone(cache):
    """REMOVE deletes the row and records the delete with its version."""
    apply(cache, [record("INSERT", "b1", biz("b1", 2))])
    apply(cache, [record("REMOVE", "b1", old=biz("b1", 2))])
    assert get(cache, "b1") is None
    assert cache.conn.execute("SELECT version, hard FROM _sync_tombstones").fetchall() == [(2, 1)]


def test_item_recreated_after_hard_delete_comes_back(cache):
    """An INSERT after a hard delete re-creates the item even if its _version restarted."""
    apply(cache, [record("INSERT", "b1", biz("b1", 4))])
    apply(cache, [record("REMOVE", "b1", old=biz("b1", 4))])
    apply(cache, [record("INSERT", "b1", biz("b1", 1, "again"))])
    assert get(cache, "b1")["name"] == {"S": "again"}


def test_soft_delete_then_reset_or_undelete_brings_the_item_back(cache):
    """Soft-deleted at v2, put back at v1 (a reset) or un-deleted without a bump: the item is live again."""
    apply(cache, [record("INSERT", "b1", biz("b1", 1))])
    apply(cache, [record("MODIFY", "b1", biz("b1", 2, deleted=True))])
    assert get(cache, "b1") is None
    apply(cache, [record("MODIFY", "b1", biz("b1", 1, "reset"))])
    assert get(cache, "b1")["name"] == {"S": "reset"}
    apply(cache, [record("MODIFY", "b1", biz("b1", 1, "reset", deleted=True))])
    apply(cache, [record("MODIFY", "b1", biz("b1", 1, "undeleted"))])
    assert get(cache, "b1")["name"] == {"S": "undeleted"}


def test_ttl_delete_is_counted(cache):
    """A TTL REMOVE deletes the row and counts as a TTL delete."""
    apply(cache, [record("INSERT", "b1", biz("b1", 1))])
    res = apply(cache, [record("REMOVE", "b1", old=biz("b1", 1), ttl=True)])
    assert res.ttl_deletes == 1 and res.deleted == 1 and get(cache, "b1") is None


def test_later_delete_removes_the_row_whatever_its_version(cache):
    """A REMOVE later in the stream removes the row even when its old image has a lower _version."""
    apply(cache, [record("INSERT", "b1", biz("b1", 6))])
    res = apply(cache, [record("REMOVE", "b1", old=biz("b1", 5))])
    assert res.skipped_stale == 0 and get(cache, "b1") is None


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


def _at(seconds: float) -> dict:
    r = record("MODIFY", "b1", biz("b1", 4, "old"))
    r["dynamodb"]["ApproximateCreationDateTime"] = datetime.fromtimestamp(seconds, UTC)
    return r


def test_record_within_the_skew_of_a_read_with_lower_version_asks_for_a_repair_read(cache):
    """A lower-version record created about when the refresh read is a doubt: refused, its key handed back."""
    cache.apply_item(BUSINESSES, ("b1",), biz("b1", 5, "fresh"), read_at=1_800_000_000.0)
    res = apply(cache, [_at(1_800_000_000.0)])
    assert res.skipped_stale == 1 and res.repair == [("b1",)] and get(cache, "b1")["name"] == {"S": "fresh"}


def test_record_clearly_after_a_read_is_newer_and_lifts_the_mark(cache):
    """A record created well after the read is applied whatever its version, and the key is unmarked."""
    cache.apply_item(BUSINESSES, ("b1",), biz("b1", 5, "fresh"), read_at=1_800_000_000.0)
    res = apply(cache, [_at(1_800_000_010.0)])
    assert res.repair == [] and get(cache, "b1")["name"] == {"S": "old"}
    assert cache.conn.execute("SELECT count(*) FROM _sync_marks").fetchone()[0] == 0


def test_refresh_of_an_absent_item_is_not_undone_by_an_older_insert(cache):
    """A read that found no item of a key the cache held keeps an INSERT created before it out of the cache."""
    cache.apply_item(BUSINESSES, ("b1",), biz("b1", 1), read_at=1_700_000_000.0)
    cache.apply_item(BUSINESSES, ("b1",), None, read_at=1_800_000_000.0)
    res = apply(cache, [record("INSERT", "b1", biz("b1", 1))])
    assert get(cache, "b1") is None and res.skipped_stale == 1 and res.repair == []


def test_refresh_of_a_key_nobody_had_writes_nothing_and_the_feed_still_ends_absent(cache):
    """A read that found no item of a key the cache never had writes nothing (no mark): the feed's own
    INSERT and REMOVE of an item made and removed before the read come in that order and leave it absent."""
    cache.apply_item(BUSINESSES, ("b1",), None, read_at=1_800_000_000.0)
    assert cache.conn.execute("SELECT count(*) FROM _sync_marks").fetchone()[0] == 0
    apply(cache, [record("INSERT", "b1", biz("b1", 1)), record("REMOVE", "b1", old=biz("b1", 1), seq=101)])
    assert get(cache, "b1") is None


def test_dead_letter_with_a_key_asks_for_a_repair_read(cache):
    """A record that cannot be applied but names its item hands its key back for a repair read."""
    bad = record("MODIFY", "b1", {"business_id": {"S": "other"}, "name": {"S": "x"}})
    res = apply(cache, [bad])
    assert res.dead == 1 and res.repair == [("b1",)]


def test_a_business_replaced_from_a_query_is_not_undone_by_older_records(cache):
    """replace_business marks what it read: a record created before the Query neither regresses nor resurrects."""
    cache.apply_item(BUSINESSES, ("b2",), biz("b2", 1, "only in the cache"), read_at=1_700_000_000.0)
    cache.replace_business("b1", {"businesses": [biz("b1", 5, "queried")]}, read_at=1_800_000_000.0)
    cache.replace_business("b2", {}, read_at=1_800_000_000.0)
    res = apply(cache, [record("MODIFY", "b1", biz("b1", 4, "old")), record("MODIFY", "b2", biz("b2", 1, "old"))])
    assert res.skipped_stale == 2 and res.repair == []
    assert get(cache, "b1")["name"] == {"S": "queried"} and get(cache, "b2") is None
