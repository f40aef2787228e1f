"""The engine against moto's HTTP server, written to by plain boto3: full sync under writes, table
re-created (stream ARN change), table missing, and records continuing after a resync."""

from __future__ import annotations

import threading

import boto3
import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES, KEYWORDS
from seo_sync.sync.engine import Engine
from tests.support.engine_threads import EngineThreads
from tests.support.items import engine_items, numbered_biz, numbered_id
from tests.support.settings import make_settings
from tests.support.waiting import wait_for


@pytest.fixture
def env(tmp_path, dynamo_endpoint, monkeypatch):
    settings = make_settings(tmp_path / "data", dynamo_endpoint, stream={"idle_poll_interval": 0.1,
                                                                         "describe_interval": 1},
                             fullsync={"scan_segments": 2, "batch_size": 200})
    source = Source(settings.aws, settings.table_prefix)
    ddb = boto3.client("dynamodb", endpoint_url=dynamo_endpoint, region_name="us-east-1")
    cache = Cache.open(settings.cache_path)
    yield settings, source, ddb, cache
    cache.close()


def dynamo_items(ddb, table: str) -> dict:
    out, kwargs = {}, {"TableName": table, "ConsistentRead": True}
    while True:
        resp = ddb.scan(**kwargs)
        for it in resp["Items"]:
            out[tuple(it[k]["S"] for k in ("business_id", "keyword_id") if k in it)] = it
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def in_step(engine, ddb, spec) -> bool:
    """The cache against moto's table read by a consistent Scan (the fake world's in_step has no DynamoDB to read)."""
    return engine_items(engine, spec) == dynamo_items(ddb, spec.dynamo_name())


def test_writes_during_full_sync_are_all_in_the_cache(env):
    """Plain boto3 puts, updates and deletes during the boot full sync all end up in the cache, none regressed."""
    settings, source, ddb, cache = env
    source.create_table(BUSINESSES)
    source.batch_write(BUSINESSES, [numbered_biz(i, 1) for i in range(600)])
    engine = Engine(settings, source, cache, tables=["businesses"])
    stop_writes = threading.Event()
    written = {"n": 0}

    def writer():
        n = 0
        while not stop_writes.is_set() and n < 2000:
            n += 1
            ddb.put_item(TableName="seo_businesses", Item=numbered_biz(n % 600, 1 + n, "during"))
            if n % 5 == 0:
                ddb.delete_item(TableName="seo_businesses", Key={"business_id": {"S": numbered_id((n * 13) % 600)}})
            if n % 7 == 0:
                ddb.put_item(TableName="seo_businesses", Item=numbered_biz(5000 + n, 1, "new"))
            written["n"] = n

    # Each Scan page waits for ten more writes, so the writes overlap the Scan however fast the
    # machine reads 600 items (CI read them all in the time of 20 writes once).
    real_scan = source.scan
    scan_began = {}

    def paced_scan(*args, **kwargs):
        for page in real_scan(*args, **kwargs):
            scan_began.setdefault("n", written["n"])
            goal = written["n"] + 10
            wait_for(lambda goal=goal: written["n"] >= goal or not w.is_alive(), 30, "ten more writes")
            yield page

    source.scan = paced_scan
    w = threading.Thread(target=writer)
    w.start()
    try:
        with EngineThreads(engine):
            assert engine.boot_synced.wait(120)
            boot_writes = written["n"]
            stop_writes.set()
            w.join()
            wait_for(lambda: in_step(engine, ddb, BUSINESSES), 30, "cache == DynamoDB")
            assert engine.join(30)  # the batch is counted after its commit
            whole = engine.snapshot()
            snap = whole["tables"]["businesses"]
    finally:
        stop_writes.set()
        w.join()
    assert boot_writes - scan_began["n"] >= 10  # the writes really overlapped the full sync
    assert snap["state"] == "streaming" and snap["gaps"] == 0
    assert whole["feed"] == {"kind": "dynamodb-streams", "get_records_calls": whole["get_records_calls"],
                             "describe_stream_calls": whole["describe_stream_calls"]}
    rows = {r["business_id"]: r["_version"] for r in Reader(cache.conn).rows(BUSINESSES)}
    versions = {k[0]: int(v["_version"]["N"]) for k, v in dynamo_items(ddb, "seo_businesses").items()}
    assert rows == versions


def test_table_recreated_is_detected_and_resynced_and_records_continue(env):
    """Delete + re-create (new stream ARN) is a gap: that table alone is resynced, then new records
    apply from the right place while the other table keeps streaming."""
    settings, source, ddb, cache = env
    source.create_table(BUSINESSES)
    source.create_table(KEYWORDS)
    source.batch_write(BUSINESSES, [numbered_biz(i, 1) for i in range(50)])
    engine = Engine(settings, source, cache, tables=["businesses", "keywords"])
    with EngineThreads(engine):
        assert engine.boot_synced.wait(60)
        old_arn = engine.snapshot()["tables"]["businesses"]["stream_arn"]
        source.delete_table(BUSINESSES)
        source.create_table(BUSINESSES)
        source.batch_write(BUSINESSES, [numbered_biz(i, 7, "second life") for i in range(10)])
        kw = {"business_id": {"S": "b1"}, "keyword_id": {"S": "k#en"}, "keyword": {"S": "during"}}
        ddb.put_item(TableName="seo_keywords", Item=kw)
        wait_for(lambda: engine.snapshot()["tables"]["businesses"]["gaps"] >= 1, 30, "gap detected")
        wait_for(lambda: engine.snapshot()["tables"]["businesses"]["state"] == "streaming"
                 and in_step(engine, ddb, BUSINESSES), 30, "resynced")
        snap = engine.snapshot()["tables"]
        assert snap["businesses"]["stream_arn"] != old_arn
        assert "ARN" in (snap["businesses"]["last_gap_reason"] or "") or "no longer exists" in (
            snap["businesses"]["last_gap_reason"] or "")
        assert snap["keywords"]["gaps"] == 0
        wait_for(lambda: in_step(engine, ddb, KEYWORDS), 20, "keywords streamed")
        # records after the resync continue from the right place
        for i in range(10, 30):
            ddb.put_item(TableName="seo_businesses", Item=numbered_biz(i, 8, "after"))
        ddb.put_item(TableName="seo_businesses", Item=numbered_biz(0, 9, "updated after"))
        wait_for(lambda: in_step(engine, ddb, BUSINESSES), 30, "records after resync")
        assert engine.snapshot()["tables"]["businesses"]["gaps"] == snap["businesses"]["gaps"]


def test_table_deleted_or_access_denied(env):
    """A table missing at first boot is marked error with its message and nothing is published; created
    later, both tables appear together, with what the other's stream brought meanwhile."""
    settings, source, ddb, cache = env
    source.create_table(BUSINESSES)
    engine = Engine(settings, source, cache, tables=["businesses", "keywords"])
    with EngineThreads(engine):
        wait_for(lambda: engine.snapshot()["tables"]["keywords"]["state"] == "error", 30, "error state")
        assert "seo_keywords" in engine.snapshot()["tables"]["keywords"]["error"]
        assert not engine.boot_synced.is_set()
        ddb.put_item(TableName="seo_businesses", Item=numbered_biz(1, 1))
        assert engine.submit(lambda c: c.count("businesses")) == 0
        source.create_table(KEYWORDS)
        assert engine.boot_synced.wait(30)
        wait_for(lambda: in_step(engine, ddb, BUSINESSES), 30, "businesses with the record")
        assert engine.snapshot()["tables"]["keywords"]["state"] == "streaming"


def test_refresh_reads_consistently_and_applies_on_the_writer(env):
    """refresh() applies the item DynamoDB holds now and reports presence and version."""
    settings, source, ddb, cache = env
    source.create_table(BUSINESSES)
    engine = Engine(settings, source, cache, tables=["businesses"])
    with EngineThreads(engine):
        assert engine.boot_synced.wait(30)
        ddb.put_item(TableName="seo_businesses", Item=numbered_biz(3, 4, "fresh"))
        out = engine.refresh("businesses", ("b0003",))
        assert out == {"table": "businesses", "key": ["b0003"], "present": True, "version": 4}
        got = engine.submit(lambda c: Reader(c.conn).get(BUSINESSES, ("b0003",)))
        assert got == numbered_biz(3, 4, "fresh")
        assert engine.refresh("businesses", ("nope",))["present"] is False
    assert codec.version_of(got) == 4
