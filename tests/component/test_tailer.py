"""tailer.py + shards.py against FakeStreams: shard graph, iterators, polling, backoff, gap detection."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from seo_sync.config import StreamSettings
from seo_sync.errors import StreamGone
from seo_sync.schema import BUSINESSES
from seo_sync.sync.shards import ACTIVE_WINDOW, ShardSet
from seo_sync.sync.tailer import TableTailer
from seo_sync.sync.writer import apply_batch
from tests.support.fake_streams import fake_source, put
from tests.support.items import cache_items, world_items

TABLE = "seo_businesses"
STREAM = StreamSettings(idle_poll_interval=1.0, max_polls_per_second=4.0, get_records_limit=50, max_backoff=30.0)


def make_tailer(world, from_trim_horizon=True, rng=lambda: 0.5):
    source = fake_source(world)
    arn = world.stream(TABLE).arn
    ss = ShardSet(source.streams, "businesses", arn, STREAM, clock=world.clock, wall=world.clock, rng=rng)
    if from_trim_horizon:
        ss.refresh()
    else:
        ss.take_positions([])
    return TableTailer(source, BUSINESSES, ss, STREAM, generation=1, clock=world.clock), source


def drain(world, tailer, cache, order=None, rounds=200):
    """Step (advancing the fake clock) and apply until the stream has nothing more to give."""
    quiet = 0
    for _ in range(rounds):
        batches = tailer.step(poll_all=True)
        for b in batches:
            apply_batch(cache, BUSINESSES, b)
            if order is not None:
                order += [(b.shard_id, int(r["dynamodb"]["SequenceNumber"])) for r in b.records]
        world.advance(1.0)
        got = any(b.records for b in batches)
        blocked = any(tailer.shards.blocked(c) for c in tailer.shards.cursors.values() if not c.finished)
        quiet = 0 if got or blocked or tailer.shards.waiting_for_children() else quiet + 1
        if quiet >= 5:
            return
    raise AssertionError("stream did not drain")




def test_more_than_100_shards(world, cache):
    """A stream of 250 shards is paged in three DescribeStream calls and every shard's records arrive."""
    world.create_table(TABLE, ("business_id",), shards=250)
    for i in range(600):
        put(world, i)
    tailer, source = make_tailer(world)
    assert len(tailer.shards.cursors) == 250
    assert source.streams.describe_stream_calls == 3
    drain(world, tailer, cache)
    assert cache_items(cache) == world_items(world)
    # What status shows under "feed" for DynamoDB Streams: the source and the same counters.
    assert source.streams.status() == {"kind": "dynamodb-streams", "describe_stream_calls": 3,
                                       "get_records_calls": source.streams.get_records_calls}


def test_shard_split_and_rollover_mid_batch(world, cache):
    """Parents are read to their end before any child, across a split and a rollover mid-read."""
    for i in range(80):
        put(world, i % 30, version=i + 1)
    tailer, _ = make_tailer(world)
    order: list = []
    batches = tailer.step(poll_all=True)  # reads the first 50 of 80: the split lands mid-shard
    for b in batches:
        apply_batch(cache, BUSINESSES, b)
        order += [(b.shard_id, int(r["dynamodb"]["SequenceNumber"])) for r in b.records]
    parent = next(iter(tailer.shards.cursors))
    a, _b2 = world.split(TABLE)
    for i in range(80, 160):
        put(world, i % 30, version=i + 1)
    child = world.rollover(TABLE, a)
    for i in range(160, 200):
        put(world, i % 30, version=i + 1)
    drain(world, tailer, cache, order)
    first_child = min(i for i, (s, _) in enumerate(order) if s != parent)
    assert all(s == parent for s, _ in order[:first_child])
    assert not any(s == parent for s, _ in order[first_child:])
    assert next(i for i, (s, _) in enumerate(order) if s == child) > max(i for i, (s, _) in enumerate(order) if s == a)
    assert cache_items(cache) == world_items(world)
    assert tailer.shards.cursors[parent].finished and tailer.shards.cursors[a].finished


def test_children_listed_late_are_found_after_parent_closes(world, cache):
    """A closed parent whose children are not listed yet is re-described until they appear."""
    world.child_listing_delay = 5.0
    put(world, 1)
    tailer, _ = make_tailer(world)
    world.split(TABLE)
    for i in range(2, 40):
        put(world, i)
    drain(world, tailer, cache)
    assert cache_items(cache) == world_items(world)
    assert len(tailer.shards.cursors) == 3


def test_expired_iterator(world, cache):
    """After an ExpiredIteratorException the next iterator is AFTER_SEQUENCE_NUMBER the last read, not LATEST."""
    for i in range(10):
        put(world, i)
    tailer, _ = make_tailer(world)
    drain(world, tailer, cache)
    last = tailer.shards.checkpoints()[0].sequence_number
    world.advance(16 * 60)
    put(world, 99)
    world.calls.clear()
    drain(world, tailer, cache)
    acquires = [c[1] for c in world.calls if c[0] == "get_shard_iterator"]
    assert acquires[0]["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER" and acquires[0]["SequenceNumber"] == last
    assert all(a["ShardIteratorType"] != "LATEST" for a in acquires)
    assert cache_items(cache) == world_items(world)


def test_expired_iterator_at_latest_before_any_record_is_a_gap(world):
    """A LATEST chain that expires before delivering a record cannot resume: StreamGone."""
    tailer, _ = make_tailer(world, from_trim_horizon=False)
    tailer.step(poll_all=True)
    world.advance(16 * 60)
    with pytest.raises(StreamGone, match="LATEST"):
        tailer.step(poll_all=True)


def test_trimmed_stream(world, cache):
    """Records trimmed under an unread position raise StreamGone (a gap), never a silent skip."""
    for i in range(5):
        put(world, i)
    tailer, _ = make_tailer(world)
    drain(world, tailer, cache)
    put(world, 6)
    world.advance(25 * 3600)
    world.trim()
    with pytest.raises(StreamGone):
        for _ in range(3):
            tailer.step(poll_all=True)


def test_checkpointed_shard_gone_is_a_gap(world, cache):
    """A shard we hold a position in that vanished from DescribeStream raises StreamGone."""
    put(world, 1)
    tailer, _ = make_tailer(world)
    world.stream(TABLE).shards.clear()
    with pytest.raises(StreamGone, match="no longer exists"):
        tailer.step(force_describe=True)


def test_stream_arn_change(world, cache):
    """A table re-created (new LatestStreamArn) is detected by the tailer as a gap."""
    tailer, _ = make_tailer(world)
    world.recreate_table(TABLE, ("business_id",))
    with pytest.raises(StreamGone, match="ARN changed"):
        tailer.step(force_describe=True)


def test_throttling_storm(world, cache):
    """Throttling backs off one shard exponentially with jitter, capped; other shards keep going; logs
    one line per interval and one on recovery; the checkpoint does not move while throttled."""
    world.create_table(TABLE, ("business_id",), shards=2)
    for i in range(40):
        put(world, i)
    tailer, _ = make_tailer(world, rng=lambda: 1.0)
    slow, fast = list(tailer.shards.cursors)
    world.throttle(8, shard_id=slow)
    delays, fast_batches = [], 0
    with capture_logs() as logs:
        for _ in range(8):
            now = world.clock()
            c = tailer.shards.cursors[slow]
            c.next_due = now
            tailer.shards.cursors[fast].next_due = now
            batches = tailer.step()
            fast_batches += sum(1 for b in batches if b.shard_id == fast and b.records)
            assert all(b.shard_id != slow for b in batches if b.records)
            delays.append(c.next_due - now)
        assert c.seq is None
        c.next_due = world.clock()
        assert any(b.shard_id == slow for b in tailer.step())
    assert delays == [min(30.0, 0.5 * 2 ** i) for i in range(8)]
    assert fast_batches >= 1
    events = [e["event"] for e in logs]
    assert events.count("stream_backoff") == 8 and events.count("stream_recovered") == 1


def test_adaptive_polling(world, cache):
    """A shard returning records is polled again after 1/max_polls_per_second; one quiet for longer than
    the active window, after the idle interval."""
    for i in range(120):
        put(world, i)
    tailer, _ = make_tailer(world)
    now = world.clock()
    tailer.step()
    c = next(iter(tailer.shards.cursors.values()))
    assert c.next_due == pytest.approx(now + 0.25)
    drain(world, tailer, cache)
    world.advance(ACTIVE_WINDOW)
    now = world.clock()
    c.next_due = now
    tailer.step()
    assert c.next_due == pytest.approx(now + 1.0)


def test_an_empty_poll_soon_after_records_keeps_the_fast_rate(world, cache):
    """Under sustained writes, an empty poll between two writes is followed by the next one at the fast
    rate, not after the idle interval (which would add up to a second to the lag)."""
    put(world, 1)
    tailer, _ = make_tailer(world)
    tailer.step()
    c = next(iter(tailer.shards.cursors.values()))
    world.advance(1.0)
    now = world.clock()
    c.next_due = now
    assert all(not b.records for b in tailer.step())  # nothing new: an empty page
    assert c.next_due == pytest.approx(now + 0.25)
    put(world, 2)
    world.advance(0.25)
    assert any(b.records for b in tailer.step())


def test_empty_pages_mid_shard(world, cache):
    """Empty pages in the middle of a shard do not end it; later records still arrive."""
    for i in range(30):
        put(world, i)
    tailer, _ = make_tailer(world)
    shard = next(iter(tailer.shards.cursors))
    world.inject_empty_pages(shard, 3)
    drain(world, tailer, cache)
    assert len(cache_items(cache)) == 30


def test_sequence_numbers_compared_as_integers(world, cache):
    """Sequence numbers growing from 21 to 22 digits keep order and checkpoints advance numerically."""
    for i in range(25):
        put(world, i)
    tailer, _ = make_tailer(world)
    order: list = []
    drain(world, tailer, cache, order)
    seqs = [s for _, s in order]
    assert len(str(seqs[0])) == 21 and len(str(seqs[-1])) == 22 and seqs == sorted(seqs)
    assert int(cache.checkpoints("businesses")[0].sequence_number) == seqs[-1]
