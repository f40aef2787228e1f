"""The change log `_sync_changes` on a temp cache: what each write path logs, a swap's exact diff,
a first boot's reloads, retention and the reload a reader behind it gets."""

from __future__ import annotations

import json
import time
from pathlib import Path

from seo_sync import codec
from seo_sync.cache import changelog
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.changes import Change
from seo_sync.feed import Checkpoint
from seo_sync.schema import TABLES, TableSpec
from tests.support import changes
from tests.support.items import biz

BUSINESSES = TABLES["businesses"]
KEYWORDS = TABLES["keywords"]


def upsert(item: codec.Item, seq: int) -> Change:
    """A stream INSERT/MODIFY of a businesses item."""
    return changes.upsert("businesses", item, str(seq))


def remove(bid: str, seq: int) -> Change:
    """A stream REMOVE of a businesses item."""
    return Change("delete", "businesses", (bid,), str(seq), None, event="REMOVE", hard=True)


def entries(cache: Cache, after: int = 0) -> list[tuple[str, str | None, str]]:
    """(table, key, op) of every log entry after seq `after`, in order."""
    return [tuple(r) for r in cache.conn.execute(
        "SELECT table_name, key, op FROM _sync_changes WHERE seq > ? ORDER BY seq", (after,))]


def last_seq(cache: Cache) -> int:
    """The highest seq handed out so far."""
    return int(cache.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = '_sync_changes'").fetchone()[0])


def publish(cache: Cache, items: list[codec.Item], spec: TableSpec = BUSINESSES) -> None:
    """A full sync of one table: scan `items` into its shadow and swap it in."""
    cache.create_shadow(spec)
    cache.insert_scanned(spec, items)
    cache.swap_shadow(spec, "arn:test", [], reason="test")


def booted(tmp_path: Path, items: list[codec.Item], diff_limit: int = 100) -> Cache:
    """A cache whose five tables had their first full sync, `items` in businesses."""
    cache = Cache.open(tmp_path / "cache.db", change_diff_limit=diff_limit)
    publish(cache, items)
    for spec in TABLES.values():
        if spec is not BUSINESSES:
            publish(cache, [], spec)
    return cache


def test_first_boot_publishes_one_reload_per_table(tmp_path):
    """The first swap of each table logs one reload (key null), not one entry per scanned row."""
    cache = booted(tmp_path, [biz(f"b{i}") for i in range(50)])
    assert entries(cache) == [(t, None, "reload") for t in TABLES]
    cache.close()


def test_swap_logs_the_exact_diff(tmp_path):
    """A resync's swap logs an upsert for each new or changed row, a delete for each row gone, and
    nothing for rows that are the same in the old and the new table."""
    cache = booted(tmp_path, [biz("same"), biz("changed"), biz("gone"), biz("version-only", version=1)])
    mark = last_seq(cache)
    publish(cache, [biz("same"), biz("changed", name="new name"), biz("new"), biz("version-only", version=2)])
    logged = entries(cache, mark)
    assert sorted(logged) == sorted([
        ("businesses", '["changed"]', "upsert"), ("businesses", '["new"]', "upsert"),
        ("businesses", '["version-only"]', "upsert"), ("businesses", '["gone"]', "delete")])
    cache.close()


def test_swap_over_the_limit_logs_one_reload(tmp_path):
    """A swap changing more rows than change_diff_limit logs one reload of that table instead."""
    cache = booted(tmp_path, [biz(f"b{i}") for i in range(10)], diff_limit=3)
    mark = last_seq(cache)
    publish(cache, [biz(f"b{i}", name="renamed") for i in range(10)])
    assert entries(cache, mark) == [("businesses", None, "reload")]
    mark = last_seq(cache)
    publish(cache, [biz(f"b{i}", name="renamed") for i in range(10)])
    assert entries(cache, mark) == []  # nothing differs: nothing logged
    cache.close()


def test_stream_batch_logs_its_rows_in_the_same_transaction(tmp_path):
    """A stream batch logs each key it wrote and each row it removed; deleting an absent row logs nothing."""
    cache = booted(tmp_path, [biz("a")])
    mark = last_seq(cache)
    cp = Checkpoint("businesses", "arn:test", "shard-1", sequence_number="3")
    cache.apply_batch(BUSINESSES, [upsert(biz("x", version=1), 1), remove("a", 2), remove("never", 3)], cp)
    assert sorted(entries(cache, mark)) == [("businesses", '["a"]', "delete"), ("businesses", '["x"]', "upsert")]
    cache.close()


def test_shadow_applies_are_not_logged(tmp_path):
    """Records applied to a shadow during a full sync log nothing until its swap."""
    cache = booted(tmp_path, [biz("a")])
    mark = last_seq(cache)
    cache.create_shadow(BUSINESSES)
    cache.apply_to_shadow(BUSINESSES, [upsert(biz("s"), 1)])
    assert entries(cache, mark) == []
    cache.close()


def test_applied_truth_logs_only_a_change(tmp_path):
    """A refresh or repair read logs an upsert when the row changed, a delete when it removed one,
    and nothing when DynamoDB confirmed what the cache held."""
    cache = booted(tmp_path, [biz("a")])
    mark = last_seq(cache)
    cache.apply_item(BUSINESSES, ("a",), biz("a"))  # the same row
    cache.apply_item(BUSINESSES, ("b",), biz("b"))
    cache.apply_item(BUSINESSES, ("a",), None)
    cache.apply_item(BUSINESSES, ("zz",), None)  # absent both sides
    assert entries(cache, mark) == [("businesses", '["b"]', "upsert"), ("businesses", '["a"]', "delete")]
    cache.close()


def test_replace_business_logs_its_keys(tmp_path):
    """sync-from-dynamo of one business logs the rows it wrote and removed, with composite keys as JSON."""
    cache = booted(tmp_path, [biz("a")])
    kw = {"business_id": {"S": "a"}, "keyword_id": {"S": "roof#en"}, "keyword": {"S": "roof"}}
    mark = last_seq(cache)
    cache.replace_business("a", {"businesses": [biz("a", name="z")], "keywords": [kw]})
    logged = entries(cache, mark)
    assert ("keywords", '["a","roof#en"]', "upsert") in logged and ("businesses", '["a"]', "upsert") in logged
    assert json.loads(logged[-1][1] or "null")[0] == "a"
    cache.close()


def test_trim_raises_the_floor_and_a_reader_behind_it_gets_reload(tmp_path):
    """Trimming by rows keeps the newest entries; a cursor below the trimmed part gets reload and the
    current end, a cursor within the log gets the entries after it."""
    cache = booted(tmp_path, [])
    for i in range(30):
        cache.apply_item(BUSINESSES, (f"k{i}",), biz(f"k{i}"))
    end = last_seq(cache)
    old_cursor = end - 29
    with cache.transaction():
        dropped = changelog.trim(cache.conn, older_than=0.0, max_rows=10)
    assert dropped == 25  # 5 reloads + 20 upserts
    reader = Reader(cache.conn)
    behind = reader.changes(old_cursor)
    assert (behind.reload, behind.changes, behind.cursor) == (True, [], end)
    within = reader.changes(end - 3)
    assert (within.reload, [e.key for e in within.changes]) == (False, [["k27"], ["k28"], ["k29"]])
    assert reader.changes(end).changes == [] and reader.changes(end + 5).reload  # a cursor from elsewhere
    with cache.transaction():
        assert changelog.trim(cache.conn, older_than=time.time() + 1, max_rows=10) == 10  # by age: all
    assert reader.changes(end).reload is False  # nothing was missed by a reader at the end
    cache.close()


def test_a_rebuilt_cache_starts_above_any_old_cursor(tmp_path):
    """A cache file made anew numbers its log above every cursor of the file it replaces."""
    first = booted(tmp_path / "one", [])
    old_end = last_seq(first)
    first.close()
    second = booted(tmp_path / "two", [])
    page = Reader(second.conn).changes(old_end)
    assert page.reload is True
    second.close()
