"""aws/kinesis_efo.py over the fake Kinesis: consumers for a fleet, pushed subscriptions, renewal, shard ends."""

from __future__ import annotations

import pytest

from seo_sync import codec
from seo_sync.aws.kinesis_efo import PUSHED, EfoFeed, ensure_consumer
from seo_sync.aws.session import ErrorContext
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.config import StreamSettings
from seo_sync.errors import SourceError, SourceThrottled
from seo_sync.schema import BUSINESSES
from seo_sync.sync.shards import ShardSet
from seo_sync.sync.tailer import Batch
from seo_sync.sync.writer import apply_batch
from tests.support.fake_kinesis import FakeKinesis
from tests.support.fake_streams import FakeWorld, create_tables

CTX = ErrorContext("http://kinesis.fake", "us-east-1")
STREAM = StreamSettings(idle_poll_interval=1.0, max_polls_per_second=4.0, get_records_limit=50, max_backoff=30.0)
SHARD = "shardId-000000000000"


def put(kin: FakeKinesis, arn: str, i: int) -> None:
    """DynamoDB writing business b{i:04d} into the stream."""
    item = codec.item_from_python({"business_id": f"b{i:04d}", "name": "n", "_version": 1})
    kin.put_change(arn, "seo_businesses", "INSERT", {"business_id": item["business_id"]}, item, None, kin.clock())


def consumer(kin: FakeKinesis, arn: str, name: str) -> str:
    """ensure_consumer on the fake's clock, its random waits at their longest."""
    return ensure_consumer(kin, CTX, arn, name, rng=lambda: 0.99, sleep=kin.advance, clock=kin.clock)


def efo_set(kin: FakeKinesis, arn: str, name: str = "gen-01") -> tuple[EfoFeed, ShardSet]:
    """An EFO feed for host `name` and a ShardSet reading `arn` from TRIM_HORIZON with it."""
    feed = EfoFeed(kin, CTX, "seo_", lambda a: consumer(kin, a, name), clock=kin.clock, read_on_threads=False)
    ss = ShardSet(feed, "businesses", arn, STREAM, clock=kin.clock, wall=kin.clock, rng=lambda: 0.5)
    ss.refresh()
    return feed, ss


def read_all(kin: FakeKinesis, ss: ShardSet, rounds: int = 40, step: float = 1.0) -> list[str]:
    """Poll every readable shard once a round, tolerating throttles; the business ids in order."""
    got: list[str] = []
    for _ in range(rounds):
        if ss.waiting_for_children(window=5.0):
            ss.refresh()
        for c in ss.readable():
            page = ss.poll(c, kin.clock())
            got += [r["dynamodb"]["Keys"]["business_id"]["S"] for r in page.records] if page else []
        kin.advance(step)
    return got


def poll_and_apply(now: float, hosts: list[tuple[ShardSet, Cache]]) -> None:
    """Each host polls each readable shard once and applies what it got to its cache."""
    for ss, cache in hosts:
        for c in ss.readable():
            page = ss.poll(c, now)
            if page is not None and page.records:
                apply_batch(cache, BUSINESSES, Batch("businesses", 1, page.shard_id, page.records, page.checkpoint))


def test_twenty_hosts_register_and_the_twenty_first_is_told_the_limit():
    """Twenty hosts each get an ACTIVE consumer; the twenty-first gets the limit named, with what to do."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    arns = {consumer(kin, arn, f"gen-{i:02d}") for i in range(20)}
    assert len(arns) == 20 and kin.registrations == 20
    assert consumer(kin, arn, "gen-05") in arns and kin.registrations == 20  # described first: no new registration
    with pytest.raises(SourceError) as err:
        consumer(kin, arn, "gen-20")
    assert "20" in err.value.message and "deregister" in (err.value.hint or "")


def test_records_are_pushed_by_the_subscription():
    """Once a position has a sequence number, records come from SubscribeToShard, not from GetRecords."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    put(kin, arn, 0)
    feed, ss = efo_set(kin, arn)
    got = read_all(kin, ss, rounds=2)
    polled = feed.get_records_calls
    for i in range(1, 30):
        put(kin, arn, i)
    got += read_all(kin, ss, rounds=10)
    assert got == [f"b{i:04d}" for i in range(30)]
    assert kin.pushed > 0 and feed.get_records_calls == polled


def test_subscription_is_renewed_after_five_minutes_from_the_last_position():
    """A subscription that AWS ends at 5 minutes is renewed after the last record delivered: nothing lost."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    put(kin, arn, 0)
    feed, ss = efo_set(kin, arn)
    got = read_all(kin, ss, rounds=3)
    for i in range(1, 40):
        put(kin, arn, i)
        got += read_all(kin, ss, rounds=1, step=20.0)  # 40 rounds of 20 s: two renewals
    got += read_all(kin, ss, rounds=10)
    assert got == [f"b{i:04d}" for i in range(40)]
    assert feed.renewals >= 2


def test_a_resubscribe_within_five_seconds_backs_off():
    """AWS's ResourceInUseException (a subscription ended under 5 s ago) is a throttle the shard backs off from."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    put(kin, arn, 0)
    feed, _ = efo_set(kin, arn)
    seq = kin.streams[arn].shards[0].records[0]["SequenceNumber"]
    feed._subscribe(arn, SHARD, f"after:{seq}", "businesses")
    with pytest.raises(SourceThrottled):
        feed._subscribe(arn, SHARD, f"after:{seq}", "businesses")
    kin.advance(6.0)
    assert feed._subscribe(arn, SHARD, f"after:{seq}", "businesses") is not None
    assert feed.refused == 1


def test_shard_end_by_subscription_leads_to_the_children():
    """A subscription's last event (no continuation, ChildShards) finishes the shard; its children are read."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    put(kin, arn, 0)
    _, ss = efo_set(kin, arn)
    got = read_all(kin, ss, rounds=2)
    for i in range(1, 10):
        put(kin, arn, i)
    kin.split(arn, SHARD)
    for i in range(10, 20):
        put(kin, arn, i)
    got += read_all(kin, ss, rounds=15)
    assert sorted(got) == [f"b{i:04d}" for i in range(20)]
    assert got[:10] == [f"b{i:04d}" for i in range(10)]
    assert ss.cursors[SHARD].finished


def test_twenty_hosts_on_enhanced_fan_out_converge_to_dynamodb(tmp_path):
    """Twenty hosts, each its own consumer and cache, follow a writer's puts and deletes to DynamoDB's state."""
    world = FakeWorld()
    create_tables(world, ["businesses"])
    kin = FakeKinesis(clock=world.clock)
    arn = kin.create_stream("seo-changes")
    hosts = []
    for i in range(20):
        feed = EfoFeed(kin, CTX, "seo_", lambda a, name=f"gen-{i:02d}": ensure_consumer(
            kin, CTX, a, name, rng=lambda: 0.5, sleep=world.advance, clock=world.clock), clock=world.clock,
            read_on_threads=False)
        ss = ShardSet(feed, "businesses", arn, STREAM, clock=world.clock, wall=world.clock, rng=lambda: 0.5)
        ss.refresh()
        hosts.append((feed, ss, Cache.open(tmp_path / f"host{i}.db")))
    for r in range(60):
        bid = f"b{r % 9:04d}"
        if r % 7 == 6:
            world.delete("seo_businesses", (bid,))
        else:
            world.put("seo_businesses", codec.item_from_python({"business_id": bid, "name": f"r{r}", "_version": r}))
        kin.forward_world(world, {"seo_businesses": arn})
        poll_and_apply(world.clock(), [(ss, cache) for _, ss, cache in hosts])
        world.advance(1.0)
    for _ in range(5):  # the last events
        poll_and_apply(world.clock(), [(ss, cache) for _, ss, cache in hosts])
        world.advance(1.0)
    truth = {k[0]: codec.item_hash(v) for k, v in world.tables["seo_businesses"].items.items()}
    assert kin.registrations == 20 and kin.pushed > 0
    for feed, _, cache in hosts:
        cached = {it["business_id"]["S"]: codec.item_hash(it) for it in Reader(cache.conn).items(BUSINESSES)}
        assert cached == truth
        assert feed.status()["mode"] == "efo"
        cache.close()


def test_a_pushed_position_read_by_polling_takes_an_iterator_first():
    """A position handed on from a subscription's page carries no iterator. When a GetRecords call is
    made from it (its page aged out between the feed's two checks, or another table's call starts
    there), the call takes an iterator after its sequence number: sending "pushed" would be refused
    as an invalid iterator, and the table would pay a full sync for it."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    for i in range(3):
        put(kin, arn, i)
    feed, ss = efo_set(kin, arn)
    first = read_all(kin, ss, rounds=2)
    assert first == ["b0000", "b0001", "b0002"]
    kin.deliver()
    seq = kin.streams[arn].shard(SHARD).records[0]["SequenceNumber"]
    page = feed._fetch(arn, SHARD, f"after:{seq}", PUSHED, 1000, "businesses")
    assert [r["dynamodb"]["Keys"]["business_id"]["S"] for _, r in page.records] == ["b0001", "b0002"]
