"""The rolling verify: differences between the cache and a Scan become repair reads once they have settled,
a difference that is only the feed's lag does not, and the repair reads leave the cache equal to DynamoDB."""

from __future__ import annotations

from seo_sync import codec
from seo_sync.schema import BUSINESSES
from seo_sync.sync.anti_entropy import SETTLE_SECONDS
from seo_sync.sync.repair import RepairQueue, run_repairs
from tests.support.clock import ManualClock
from tests.support.fake_streams import fake_source
from tests.support.items import cache_items
from tests.support.rolling_verify import run_pass, verifier, world_with

TABLE = "seo_businesses"



def test_a_hand_edit_and_a_lost_row_are_found_and_repaired(cache):
    """An edited row and a deleted row: both suspects settle, become repair reads, and the cache equals DynamoDB."""
    world = world_with(10)
    for key, item in world.tables[TABLE].items.items():
        cache.apply_item(BUSINESSES, key, item)
    cache.conn.execute("UPDATE businesses SET name = 'edited' WHERE business_id = 'b0003'")
    cache.conn.execute("DELETE FROM businesses WHERE business_id = 'b0007'")
    extra = {"business_id": {"S": "zz-only-in-cache"}, "name": {"S": "ghost"}}
    cache.apply_item(BUSINESSES, ("zz-only-in-cache",), extra)
    clock, repairs = ManualClock(100.0), RepairQueue(1000, 1000)
    v = verifier(cache, world, clock, repairs)
    run_pass(v, clock, 4 + int(SETTLE_SECONDS) + 2)  # 10 items at 4 a page, the end, then the settling
    assert repairs.status()["by_reason"] == {"anti-entropy": 3}
    assert v.status()["businesses"]["differences"] == 3 and v.status()["businesses"]["passes"] == 1
    assert run_repairs(cache, fake_source(world), {"businesses": BUSINESSES}, repairs) == 3
    assert repairs.status()["changed"] == 3
    want = {k[0]: it for k, it in world.tables[TABLE].items.items()}
    assert cache_items(cache).keys() == want.keys()
    assert all(codec.item_hash(cache_items(cache)[k]) == codec.item_hash(it) for k, it in want.items())


def test_a_difference_the_feed_catches_up_with_is_not_repaired(cache):
    """The Scan saw a change the cache applies a moment later: the suspect is dropped, no repair read."""
    world = world_with(3)
    for key, item in world.tables[TABLE].items.items():
        cache.apply_item(BUSINESSES, key, item)
    newer = codec.item_from_python({"business_id": "b0001", "name": "renamed", "_version": 2})
    world.put(TABLE, newer)
    clock, repairs = ManualClock(100.0), RepairQueue(1000, 1000)
    v = verifier(cache, world, clock, repairs)
    v.step()  # the first page holds all three items: b0001 differs
    cache.apply_item(BUSINESSES, ("b0001",), newer)  # the stream's record arrives
    run_pass(v, clock, int(SETTLE_SECONDS) + 3)
    assert repairs.status()["queued"] == 0 and v.status()["businesses"]["differences"] == 0


def test_a_table_not_streaming_is_not_verified(cache):
    """While a table boots or resyncs its rows are a full sync's business: no Scan, no suspects."""
    world = world_with(3)
    clock, repairs = ManualClock(100.0), RepairQueue(1000, 1000)
    v = verifier(cache, world, clock, repairs)
    v.is_ready = lambda _name: False
    run_pass(v, clock, 8)
    assert v.status()["businesses"]["items_checked"] == 0 and repairs.status()["queued"] == 0
