"""A table being resynced keeps following its stream: its live rows do not freeze until the swap."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from seo_sync import codec
from seo_sync.cache.writer import Cache
from seo_sync.sync.engine import Engine
from tests.support.engine_threads import EngineThreads
from tests.support.fake_streams import FakeWorld, create_tables, fake_source
from tests.support.items import in_step, numbered_biz
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)
TABLE = "seo_businesses"


class ScanGate:
    """Holds every Scan of one table until released, and says when one arrived."""

    def __init__(self, world: FakeWorld, table: str) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        real_scan = world.dynamodb.scan

        def held_scan(**kwargs: Any) -> dict[str, Any]:
            if kwargs.get("TableName") == table and not self.release.is_set():
                self.entered.set()
                self.release.wait(60)
            return real_scan(**kwargs)

        world.dynamodb.scan = held_scan  # type: ignore[method-assign]


def test_live_rows_follow_the_stream_while_their_table_is_rebuilt(tmp_path):
    """Writes made while the table's resync is held in its Scan reach the live table before the swap."""
    world = FakeWorld()
    create_tables(world, ["businesses"])
    for i in range(5):
        world.put(TABLE, numbered_biz(i))
    settings = make_settings(tmp_path / "data", None, stream={"idle_poll_interval": 0.05})
    engine = Engine(settings, fake_source(world), Cache.open(settings.cache_path), clock=world.clock,
                    tables=["businesses"])
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        assert engine.join(10)  # the boot published its Scan; the repair reads and batches it left are applied
        assert in_step(engine, world)
        first_sync = engine.snapshot()["tables"]["businesses"]["last_full_sync"]
        gate = ScanGate(world, TABLE)
        assert engine.request_resync("businesses", reason="test")
        assert gate.entered.wait(20), "the resync never reached its Scan"
        world.put(TABLE, numbered_biz(100))
        world.put(TABLE, numbered_biz(1, version=2))
        world.delete(TABLE, ("b0002",))
        wait_for(lambda: in_step(engine, world), timeout=20, what="live rows in step during the resync")
        assert engine.snapshot()["tables"]["businesses"]["state"] == "syncing"
        world.advance(1.0)  # the engine's clock is the world's: the swap's time must differ from the boot's
        gate.release.set()
        wait_for(lambda: engine.snapshot()["tables"]["businesses"]["last_full_sync"] != first_sync,
                 timeout=30, what="the resync's swap")
        world.put(TABLE, numbered_biz(101))
        wait_for(lambda: in_step(engine, world), timeout=20, what="streaming after the swap")


def test_batches_queued_during_one_swap_are_applied_before_the_next_tables_swap(tmp_path):
    """Two tables resynced together are swapped one after the other: a live batch of a third table that
    queues during the first swap is applied before the second table's catch-up and swap, not after."""
    world = FakeWorld()
    create_tables(world, ["businesses", "questionnaires", "keywords"])
    world.put(TABLE, numbered_biz(0))
    settings = make_settings(tmp_path / "data", None, stream={"idle_poll_interval": 0.05})
    cache = Cache.open(settings.cache_path)
    engine = Engine(settings, fake_source(world), cache, clock=world.clock,
                    tables=["businesses", "questionnaires", "keywords"])
    order: list[str] = []
    real_publish, real_apply = cache.publish, cache.apply_batch

    def keyword_queued() -> bool:
        """The keyword's record is read: its batch waits for the writer, which is busy swapping."""
        with engine.writer.batches.mutex:
            return any(b.table == "keywords" and b.records for b in engine.writer.batches.queue)

    def publish(swaps: Any) -> None:
        real_publish(swaps)
        order.append("swap " + ",".join(s.spec.name for s in swaps))
        if len(order) == 1:  # the first table's swap: a keyword is written and its batch queues meanwhile
            world.put("seo_keywords", codec.item_from_python({"business_id": "b0000", "keyword_id": "k1",
                                                              "_version": 1}))
            wait_for(keyword_queued, timeout=20, what="the keyword's batch queued")

    def apply_batch(spec: Any, changes: Any, *args: Any, **kwargs: Any) -> Any:
        if changes:
            order.append("apply " + spec.name)
        return real_apply(spec, changes, *args, **kwargs)

    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        world.advance(1.0)
        held = threading.Event()
        release = threading.Event()

        def hold(_: Cache) -> None:  # keeps the writer busy while both resyncs are asked for
            held.set()
            release.wait(20)

        blocker = threading.Thread(target=lambda: engine.submit(hold), daemon=True)
        blocker.start()
        assert held.wait(20)
        cache.publish, cache.apply_batch = publish, apply_batch  # type: ignore[method-assign]
        engine.request_resync("businesses", reason="test")
        engine.request_resync("questionnaires", reason="test")
        release.set()
        wait_for(lambda: len([o for o in order if o.startswith("swap")]) == 2, timeout=30, what="both swaps")
        assert engine.join(20)  # the keyword's batch was queued during the first swap
        assert "apply keywords" in order, order
    assert order.index("apply keywords") < order.index("swap questionnaires"), order
