"""`Engine.join` returns once the batches queued for the writer and the repair reads are drained."""

from __future__ import annotations

from seo_sync.cache.writer import Cache
from seo_sync.sync.engine import Engine
from tests.support.fake_streams import FakeWorld, create_tables, fake_source, put
from tests.support.settings import make_settings


def test_join_waits_for_queued_batches_and_every_step_of_a_repair_read(tmp_path):
    """A queued batch, a pending repair read and an unapplied answer each keep join from returning."""
    world = FakeWorld()
    create_tables(world, ["businesses"])
    put(world, 0, name="n0")
    cache = Cache.open(tmp_path / "cache.db")
    try:
        engine = Engine(make_settings(tmp_path), fake_source(world), cache, clock=world.clock, tables=["businesses"])
        rt = engine.tables["businesses"]
        engine.writer.start_table(rt)  # driven in step: no thread runs, so nothing drains by itself
        assert engine.join(0)
        put(world, 1, name="n1")
        assert rt.tailer is not None
        batches = rt.tailer.step(poll_all=True)
        assert any(b.records for b in batches)
        for batch in batches:
            engine.writer.batches.put(batch)
        assert not engine.join(0.05)  # the batch is queued
        engine.writer._drain(0.0, 100)
        assert engine.join(0)
        engine.repairs.add("businesses", ("b0001",), "stream")
        assert not engine.join(0.05)  # the read is pending
        assert engine.repair_reader.read() == (1, None)
        assert not engine.join(0.05)  # its answer is not applied
        assert engine.writer.run_repairs() == 1
        assert engine.join(0)
    finally:
        cache.close()
