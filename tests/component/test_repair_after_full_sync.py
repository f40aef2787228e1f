"""A record captured during a full sync that becomes a dead letter is read again from DynamoDB once the rebuilt
table is live, and that repair read resolves the letter."""

from __future__ import annotations

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES
from seo_sync.sync.engine import Engine
from tests.support.fake_streams import FakeWorld, create_tables, fake_source, put
from tests.support.settings import make_settings


def test_a_dead_letter_captured_by_a_full_sync_gets_its_repair_read_after_the_swap(tmp_path):
    """During the Scan a good write and a malformed record of b0001 arrive: after the swap b0001 is read again."""
    world = FakeWorld()
    create_tables(world, ["businesses"])
    for i in range(3):
        put(world, i, name=f"n{i}")
    fired = []

    def during_scan(table: str, _page: int) -> None:
        if fired or table != "seo_businesses":
            return
        fired.append(True)
        put(world, 1, version=2, name="renamed")
        world.inject_record("seo_businesses", ("b0001",), {"eventName": "MODIFY", "dynamodb": {
            "Keys": {"business_id": {"S": "b0001"}}, "NewImage": {"business_id": {"S": "b0001"},
                                                                 "n": {"N": "1" * 40}}}})

    world.scan_hook = during_scan
    cache = Cache.open(tmp_path / "cache.db")
    try:
        engine = Engine(make_settings(tmp_path), fake_source(world), cache, clock=world.clock, tables=["businesses"])
        engine.writer.start_table(engine.tables["businesses"])
        assert fired and cache.dead_letter_count("businesses") == 1
        assert engine.repairs.pending() == 1
        assert engine.repair_reader.read() == (1, None)
        assert engine.writer.run_repairs() == 1
        assert cache.dead_letter_count("businesses") == 0
        got = Reader(cache.conn).get(BUSINESSES, ("b0001",))
        truth = world.tables["seo_businesses"].items[("b0001",)]
        assert got is not None and codec.item_hash(got) == codec.item_hash(truth)
    finally:
        cache.close()
