"""Stream failures through the running engine (its threads) over FakeStreams: throttling storm,
trimmed stream, checkpoint too old, malformed records, deletes, 400 KB items, resync coalescing, restart."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from seo_sync import codec
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES, KEYWORDS
from seo_sync.sync.engine import Engine
from tests.support.engine_threads import EngineThreads
from tests.support.fake_streams import FakeWorld, create_tables, fake_source
from tests.support.items import in_step, numbered_biz
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)
TABLES = ["businesses", "keywords"]


@pytest.fixture
def world():
    w = FakeWorld()
    create_tables(w, TABLES)
    return w


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data", None, stream={"idle_poll_interval": 0.05, "max_backoff": 1.0})


def make_engine(world, settings):
    cache = Cache.open(settings.cache_path)
    return Engine(settings, fake_source(world), cache, clock=world.clock, tables=TABLES), cache


def kw(i, word="w"):
    return codec.item_from_python({"business_id": "b1", "keyword_id": f"k{i}#en", "keyword": word})


def test_throttling_storm(world, settings):
    """A throttled shard backs off (one log line per interval, one on recovery) while the other table
    keeps streaming; nothing is lost once the storm passes."""
    engine, cache = make_engine(world, settings)
    with capture_logs() as logs, EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        shard = world.open_shards("seo_businesses")[0].shard_id
        world.throttle(5, shard_id=shard)
        world.put("seo_businesses", numbered_biz(1))
        for i in range(20):
            world.put("seo_keywords", kw(i))
        wait_for(lambda: in_step(engine, world, KEYWORDS), 10, "keywords stream on")
        wait_for(lambda: in_step(engine, world, BUSINESSES), 20, "businesses after the storm")
        assert engine.join(10)  # the batch is counted after its commit
        snap = engine.snapshot()["tables"]
    events = [e["event"] for e in logs if e.get("table") == "businesses"]
    assert events.count("stream_backoff") == 5 and events.count("stream_recovered") == 1
    assert snap["businesses"]["state"] == "streaming" and snap["keywords"]["gaps"] == 0
    cache.close()


def test_trimmed_stream(world, settings):
    """Records trimmed before they were read are a gap: that table alone is fully resynced, nothing is
    missed, the reason is in the snapshot, and the other table keeps streaming."""
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        world.put("seo_businesses", numbered_biz(1))
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "first record")
        with world.lock:  # the poller cannot read these before they are trimmed
            for i in range(2, 30):
                world.put("seo_businesses", numbered_biz(i))
            world.trim(retention=0, table="seo_businesses")
        world.put("seo_keywords", kw(1))
        wait_for(lambda: engine.snapshot()["tables"]["businesses"]["gaps"] == 1, 10, "gap")
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "resynced")
        world.put("seo_businesses", numbered_biz(40))
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "streaming after the resync")
        wait_for(lambda: in_step(engine, world, KEYWORDS), 10, "keywords")
        snap = engine.snapshot()["tables"]
    assert "trimmed" in snap["businesses"]["last_gap_reason"]
    assert snap["keywords"]["gaps"] == 0
    cache.close()


def boot_with_one_record(world, settings) -> None:
    """Boot an engine, stream one business into its cache, and stop it (a first run before a restart)."""
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        world.put("seo_businesses", numbered_biz(1))
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "record")
    cache.close()


def test_checkpoint_older_than_24h_is_a_gap_at_restart(world, settings):
    """A restart finding a checkpoint older than checkpoint_max_age_hours resyncs that table and says why."""
    boot_with_one_record(world, settings)
    world.advance(25 * 3600)
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        snap = engine.snapshot()["tables"]["businesses"]
    assert snap["gaps"] == 1 and "older than 24 h" in snap["last_gap_reason"]
    cache.close()


def test_restart_resumes_from_checkpoints_without_full_sync(world, settings):
    """With fresh checkpoints a restart resumes after the last committed sequence: no full sync, nothing lost."""
    boot_with_one_record(world, settings)
    for i in range(2, 10):
        world.put("seo_businesses", numbered_biz(i))
    engine, cache = make_engine(world, settings)
    with capture_logs() as logs, EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "records written while stopped")
    synced = [e["table"] for e in logs if e["event"] == "full_sync_started"]
    assert "businesses" not in synced
    assert any(e["event"] == "table_resumed" and e["table"] == "businesses" for e in logs)
    cache.close()


def test_malformed_records(world, settings):
    """Malformed records become dead letters in the commit that moves past them; a keyed one gets a repair read."""
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        world.put("seo_businesses", numbered_biz(1))
        world.inject_record("seo_businesses", ("b0001",), {"eventName": "INSERT", "dynamodb": {
            "Keys": {"business_id": {"S": "b0001"}}, "NewImage": {"business_id": {"S": "b0001"},
                                                                 "n": {"N": "1" * 40}}}})
        world.inject_record("seo_businesses", ("b0001",), {"eventName": "WHAT", "dynamodb": {}})
        world.put("seo_businesses", numbered_biz(2))
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "good records")
        # The letter that names its item is followed by a repair read of that key, which resolves it;
        # the one without a usable key stays unresolved. Both are kept in the table.
        assert engine.join(10), "the batches and the repair read of b0001 drained"
        assert engine.snapshot()["repairs"]["done"] >= 1
        # The status count of dead letters is taken from the cache by the writer's recount, at most
        # once a second and not awaited by join: it is polled.
        wait_for(lambda: engine.snapshot()["tables"]["businesses"]["dead_letters"] == 1, 10, "dead letters")
        assert engine.submit(lambda c: c.conn.execute("SELECT count(*) FROM _sync_dead_letters").fetchone()[0]) == 2
        assert engine.submit(lambda c: c.dead_letter_count("businesses")) == 1
    cache.close()


def test_hard_delete_ttl_delete_and_soft_delete(world, settings):
    """REMOVE, TTL REMOVE and `_deleted` all take the row out; TTL deletes are counted apart."""
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        for i in range(3):
            world.put("seo_businesses", numbered_biz(i))
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "puts")
        world.delete("seo_businesses", ("b0000",))
        world.delete("seo_businesses", ("b0001",), ttl=True)
        world.put("seo_businesses", numbered_biz(2, 2, _deleted=True))
        wait_for(lambda: engine.submit(lambda c: c.count("businesses")) == 0, 10, "deletes")
        assert engine.join(10)  # the batch is counted after its commit
        snap = engine.snapshot()["tables"]["businesses"]
    assert snap["ttl_deletes"] == 1 and snap["records_applied"] == 6
    cache.close()


def test_400kb_items(world, settings):
    """400 KB items stream through the engine and read back identical."""
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        for i in range(8):
            world.put("seo_businesses", numbered_biz(i, 1, blob="y" * 400_000))
        wait_for(lambda: in_step(engine, world, BUSINESSES), 20, "big items")
    cache.close()


def test_resync_requests_are_coalesced(world, settings):
    """A storm of resync requests queues one resync per table; a new request after it ran is accepted."""
    engine, cache = make_engine(world, settings)
    answers = [engine.request_resync("businesses", "storm") for _ in range(1000)]
    assert answers.count(True) == 1
    with capture_logs() as logs, EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        wait_for(lambda: not engine.tables["businesses"].resync_pending, 10, "resync ran")
        assert engine.request_resync(None, "again") is True
        wait_for(lambda: not any(rt.resync_pending for rt in engine.tables.values()), 10, "second resync ran")
        progress = engine.progress()
    syncs = [e for e in logs if e["event"] == "full_sync_started" and e["table"] == "businesses"]
    assert len(syncs) == 3  # boot, the coalesced storm, the later request
    assert set(progress) == {"writer", "repair-reads", "poller-businesses", "poller-keywords"}
    cache.close()


def test_snapshot_is_json_and_complete(world, settings):
    """snapshot() has every per-table field the service reports and serialises as JSON; a job may submit a job."""
    import json

    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        snap = json.loads(json.dumps(engine.snapshot()))
        assert engine.submit(lambda c: engine.submit(lambda c2: c2.count("businesses"))) == 0  # no self-deadlock
    fields = {"rows", "last_full_sync", "stream_arn", "shards", "last_sequence", "lag_seconds", "state", "error",
              "gaps", "last_gap_reason", "dead_letters", "skipped_stale", "ttl_deletes", "records_applied",
              "commit_error", "full_syncs_started", "resyncs_coalesced", "stalled_shards"}
    assert set(snap["tables"]["businesses"]) == fields
    assert {"get_records_calls", "describe_stream_calls", "get_records_per_hour"} <= set(snap)
    cache.close()


def test_child_shard_listed_before_a_restart_is_resumed_from_trim_horizon(world, settings):
    """A split seen before a stop is committed at once: after a restart the children are read from
    TRIM_HORIZON (no full sync, nothing lost)."""
    split_and_stop(world, settings)
    for i in range(2, 12):
        world.put("seo_businesses", numbered_biz(i))
    engine, cache = make_engine(world, settings)
    with capture_logs() as logs, EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "records in the children")
    assert not [e for e in logs if e["event"] == "full_sync_started" and e["table"] == "businesses"]
    cache.close()


def split_and_stop(world, settings):
    """Run the engine until a split's children are committed, then stop it."""
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)
        world.put("seo_businesses", numbered_biz(1))
        world.split("seo_businesses")
        wait_for(lambda: len(engine.submit(lambda c: c.checkpoints("businesses"))) == 3, 10, "children committed")
    cache.close()
    return engine, cache


def test_child_shard_unread_for_more_than_24h_is_a_gap(world, settings):
    """Children listed but unread for more than 24 h may have lost records to trimming: a gap, resynced."""
    split_and_stop(world, settings)
    for i in range(2, 12):
        world.put("seo_businesses", numbered_biz(i))
    world.advance(25 * 3600)
    world.trim()
    engine, cache = make_engine(world, settings)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(10)  # the gap's full sync runs as the table boots
        assert engine.join(10)
        assert in_step(engine, world, BUSINESSES)
        snap = engine.snapshot()["tables"]["businesses"]
    assert snap["gaps"] == 1 and "older than" in snap["last_gap_reason"]
    cache.close()


def test_table_deleted_or_access_denied(world, settings):
    """AccessDenied on one table at first boot marks it error with the message and publishes nothing;
    once it recovers both tables appear together, with what the other's stream brought meanwhile."""
    world.denied.add("seo_businesses")
    engine, cache = make_engine(world, settings)
    with capture_logs() as logs, EngineThreads(engine):
        wait_for(lambda: engine.snapshot()["tables"]["businesses"]["state"] == "error", 10, "error state")
        assert "AccessDenied" in engine.snapshot()["tables"]["businesses"]["error"]
        wait_for(lambda: any(e["event"] == "first_boot_table_built" and e["table"] == "keywords" for e in logs),
                 10, "keywords built")
        world.put("seo_keywords", kw(1))
        assert engine.submit(lambda c: (c.readiness().complete, c.count("keywords"))) == (False, 0)
        world.denied.clear()
        assert engine.boot_synced.wait(10)
        wait_for(lambda: in_step(engine, world, KEYWORDS), 10, "keywords published with its stream's record")
        world.put("seo_businesses", numbered_biz(1))
        wait_for(lambda: in_step(engine, world, BUSINESSES), 10, "businesses after recovery")
        assert engine.snapshot()["tables"]["businesses"]["state"] == "streaming"
    cache.close()
