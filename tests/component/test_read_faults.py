"""Answers that could be faults never remove a live row: the absent confirmation of direct reads,
and anti-entropy's whole pages and burst limit."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from seo_sync.schema import BUSINESSES
from seo_sync.sync.anti_entropy import BURST_DIFFERENCES, SETTLE_SECONDS
from seo_sync.sync.repair import RepairQueue, run_repairs
from tests.support.clock import ManualClock
from tests.support.fake_streams import fake_source
from tests.support.rolling_verify import run_pass, verifier, world_with

TABLE = "seo_businesses"


def in_cache(cache, world) -> None:
    for key, item in world.tables[TABLE].items.items():
        cache.apply_item(BUSINESSES, key, item)


def test_one_absent_answer_for_a_live_row_is_read_again(cache):
    """A repair read answered "absent" once (a wrong answer no shape check sees) reads again: the row stays."""
    world = world_with(3)
    in_cache(cache, world)
    source = fake_source(world)
    client, real, lies = source.ddb, source.ddb.get_item, [1]

    def get_item(**kwargs: Any) -> dict[str, Any]:
        if lies[0]:
            lies[0] -= 1
            return {}
        return real(**kwargs)

    client.get_item = get_item
    repairs = RepairQueue(1000, 1000)
    repairs.add("businesses", ("b0001",), "stream")
    assert run_repairs(cache, source, {"businesses": BUSINESSES}, repairs) == 1
    assert cache.row(BUSINESSES, ("b0001",)) is not None
    assert lies == [0] and repairs.status()["changed"] == 0


def test_an_absent_row_confirmed_twice_goes(cache):
    """A key DynamoDB really no longer has is removed after its second read."""
    world = world_with(3)
    in_cache(cache, world)
    del world.tables[TABLE].items[("b0002",)]
    source = fake_source(world)
    read = source.read_item(BUSINESSES, ("b0002",), live=True)
    assert read.item is None and read.confirmed and read.at == world.now
    repairs = RepairQueue(1000, 1000)
    repairs.add("businesses", ("b0002",), "stream")
    run_repairs(cache, source, {"businesses": BUSINESSES}, repairs)
    assert cache.row(BUSINESSES, ("b0002",)) is None


def test_a_cut_scan_page_is_not_an_empty_table(cache):
    """A Scan answer cut to `{}` is an error that restarts the pass, never "the table ended here": no suspects."""
    world = world_with(20)
    in_cache(cache, world)
    clock, repairs = ManualClock(100.0), RepairQueue(1000, 1000)
    v = verifier(cache, world, clock, repairs)
    v.source.ddb.scan = lambda **_: {}
    with capture_logs() as logs:
        run_pass(v, clock, 10 + int(SETTLE_SECONDS))
    assert repairs.status()["queued"] == 0
    assert v.status()["businesses"]["differences"] == 0 and v.status()["businesses"]["passes"] == 0
    assert any(e["event"] == "anti_entropy_page_failed" and "Items" in e["error"] for e in logs)


def test_a_burst_of_differences_is_a_fault_of_the_read(cache):
    """A page whose every item differs from the cache (more than the burst limit) queues no repair read."""
    world = world_with(BURST_DIFFERENCES + 20)
    in_cache(cache, world)
    clock, repairs = ManualClock(100.0), RepairQueue(1000, 1000)
    v = verifier(cache, world, clock, repairs)
    v.page_limit = BURST_DIFFERENCES + 20
    real = v.source.ddb.scan

    def scan(**kwargs: Any) -> dict[str, Any]:  # every name garbled in a whole-looking answer
        resp = real(**kwargs)
        return {**resp, "Items": [{**it, "name": {"S": "garbled"}} for it in resp["Items"]]}

    v.source.ddb.scan = scan
    with capture_logs() as logs:
        run_pass(v, clock, 3 + int(SETTLE_SECONDS))
    assert repairs.status()["queued"] == 0
    assert v.status()["businesses"]["bursts"] >= 1
    assert "anti_entropy_burst" in [e["event"] for e in logs]
