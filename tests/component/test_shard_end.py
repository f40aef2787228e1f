"""A shard ends only when DynamoDB says so (shards.py): GetRecords without a next iterator AND DescribeStream."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from seo_sync.config import StreamSettings
from seo_sync.feed import Checkpoint
from seo_sync.schema import BUSINESSES
from seo_sync.sync.shards import ShardSet
from seo_sync.sync.tailer import TableTailer
from seo_sync.sync.writer import apply_batch
from tests.support.fake_streams import fake_source, put
from tests.support.items import cache_items, world_items

TABLE = "seo_businesses"
STREAM = StreamSettings(idle_poll_interval=1.0, max_polls_per_second=4.0, get_records_limit=50, max_backoff=30.0)


def make_tailer(world):
    """A tailer of the businesses stream over the fake world, every shard read from TRIM_HORIZON."""
    source = fake_source(world)
    ss = ShardSet(source.streams, "businesses", world.stream(TABLE).arn, STREAM, clock=world.clock,
                  wall=world.clock, rng=lambda: 0.5)
    ss.refresh()
    return TableTailer(source, BUSINESSES, ss, STREAM, generation=1, clock=world.clock), source


def drain(world, tailer, cache, rounds=200):
    """Step (advancing the fake clock) and apply until the stream has nothing more to give."""
    quiet = 0
    for _ in range(rounds):
        batches = tailer.step(poll_all=True)
        for b in batches:
            apply_batch(cache, BUSINESSES, b)
        world.advance(1.0)
        quiet = 0 if any(b.records for b in batches) else quiet + 1
        if quiet >= 5:
            return
    raise AssertionError("stream did not drain")




def cut_next_iterator(source: Any, times: int) -> list[int]:
    """The next `times` GetRecords answers lose their NextShardIterator (what `{}` from a cut looked like)."""
    client = source.streams.client
    real = client.get_records
    left = [times]

    def get_records(**kwargs: Any) -> dict[str, Any]:
        resp = dict(real(**kwargs))
        if left[0] > 0:
            left[0] -= 1
            resp.pop("NextShardIterator", None)
        return resp

    client.get_records = get_records
    return left


def test_an_answer_without_next_iterator_on_an_open_shard_is_not_an_end(world, cache):
    """GetRecords alone saying "end" of a shard DescribeStream lists open: not finished, not checkpointed
    finished, the records read are still handed on, and reading resumes after them."""
    for i in range(5):
        put(world, i)
    tailer, source = make_tailer(world)
    left = cut_next_iterator(source, 3)
    with capture_logs() as logs:
        for _ in range(6):
            for b in tailer.step(poll_all=True):
                apply_batch(cache, tailer.spec, b)
                assert not b.checkpoint.closed
            world.advance(1.0)
    assert left == [0]
    assert not any(c.finished for c in tailer.shards.cursors.values())
    events = [e["event"] for e in logs]
    assert "shard_finished" not in events and events.count("shard_end_unconfirmed") == 3
    for i in range(5, 10):
        put(world, i)
    drain(world, tailer, cache)
    assert cache_items(cache) == world_items(world)
    assert not any(cp.closed for cp in cache.checkpoints("businesses"))


def test_a_shard_recorded_finished_but_listed_open_is_read_again(world, cache):
    """A checkpoint that says finished for a shard DynamoDB still lists open (written by a fault) is
    reopened at the next DescribeStream, and the records after it arrive."""
    for i in range(3):
        put(world, i)
    tailer, source = make_tailer(world)
    drain(world, tailer, cache)
    (shard,) = tailer.shards.cursors.values()
    cp = Checkpoint("businesses", tailer.shards.arn, shard.shard_id, None, shard.seq, True, None, world.clock())
    resumed = ShardSet.from_checkpoints(source.streams, "businesses", tailer.shards.arn, STREAM, [cp],
                                        clock=world.clock, wall=world.clock)
    assert resumed.readable() == []  # as today's restart saw it: nothing to poll, ever
    tailer.shards = resumed
    for i in range(3, 8):
        put(world, i)
    with capture_logs() as logs:
        drain(world, tailer, cache)
    assert "shard_reopened" in [e["event"] for e in logs]
    assert cache_items(cache) == world_items(world)
    assert resumed.reopened == 1


def test_an_open_shard_without_get_records_is_unhealthy_and_repairs_itself(world, cache):
    """A readable shard left without a GetRecords call past the stall limit shows in stalled_shards,
    and the next step polls it: the records after it arrive."""
    put(world, 0)
    tailer, _ = make_tailer(world)
    drain(world, tailer, cache)
    (shard,) = tailer.shards.cursors.values()
    shard.next_due = float("inf")  # whatever kept it from being polled
    put(world, 1)
    world.advance(tailer.stall_after + 1)
    assert tailer.stalled_shards() == 1
    with capture_logs() as logs:
        for b in tailer.step():
            apply_batch(cache, tailer.spec, b)
    assert "shards_stalled" in [e["event"] for e in logs]
    assert tailer.stalled_shards() == 0
    assert cache_items(cache) == world_items(world)


def test_stalled_shards_make_the_daemon_unhealthy():
    """health names a table whose open shards get no GetRecords call."""
    from seo_sync.service.reasons import health_reasons

    tables = {"keywords": {"state": "streaming", "lag_seconds": 0, "stalled_shards": 2}}
    reasons = health_reasons(tables, prefix="seo_", lag_alarm=60, ready=True, boot_synced=True,
                             had_complete_cache=True)
    assert reasons == ["keywords: 2 open shards without a GetRecords call for over a minute"]
