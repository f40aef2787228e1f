"""Enhanced fan-out is pushed: a poller waits on the subscription, not on its poll interval."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, cast

import pytest
from botocore.exceptions import ReadTimeoutError

from seo_sync.aws.kinesis import make_position
from seo_sync.aws.kinesis_efo import EfoFeed
from seo_sync.aws.kinesis_records import wrap
from seo_sync.aws.session import ErrorContext
from seo_sync.aws.tables import Source
from seo_sync.config import StreamSettings
from seo_sync.errors import SourceError
from seo_sync.feed import Checkpoint
from seo_sync.schema import BUSINESSES
from seo_sync.sync.poller import PollerThread
from seo_sync.sync.shards import ShardSet
from seo_sync.sync.table_state import TableState
from seo_sync.sync.tailer import Batch, TableTailer
from tests.support.eventstream_server import wire_record

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/seo-changes"
CONSUMER = STREAM + "/consumer/gen-01:1700000000"
SHARD = "shardId-000000000000"
# Polls far apart: a record that arrives within the test's wait came because it was pushed.
SLOW = StreamSettings(idle_poll_interval=60.0, max_polls_per_second=0.02, describe_interval=3600.0)
WAIT = 30.0  # seconds a test waits for a batch before it fails (the polls above are 50 to 60 s apart)


class PushedEvents:
    """A SubscribeToShard event stream that blocks until the test pushes, as AWS's does until records arrive."""

    def __init__(self) -> None:
        self.q: queue.Queue[dict[str, Any] | Exception | None] = queue.Queue()

    def __iter__(self) -> PushedEvents:
        return self

    def __next__(self) -> dict[str, Any]:
        event = self.q.get()
        if event is None:
            raise StopIteration
        if isinstance(event, Exception):
            raise event
        return {"SubscribeToShardEvent": event}

    def close(self) -> None:
        self.q.put(None)

    def push(self, seq: int) -> None:
        """One event carrying business b{seq}'s change, as sequence number `seq`."""
        data = wrap("seo_businesses", "MODIFY", {"business_id": {"S": f"b{seq}"}},
                    {"business_id": {"S": f"b{seq}"}, "_version": {"N": "1"}}, None, 1_700_000_000_000_000 + seq)
        record = wire_record(str(seq), data, arrival=time.time())
        self.q.put({"Records": [record], "ContinuationSequenceNumber": str(seq), "MillisBehindLatest": 0})


class PushClient:
    """The calls the EFO feed makes, counted: subscriptions get `events`; GetRecords has nothing."""

    def __init__(self) -> None:
        self.events = PushedEvents()
        self.subscribed = threading.Event()
        self.subscriptions: list[dict[str, Any]] = []  # the StartingPosition of each
        self.get_records_calls = 0

    def subscribe_to_shard(self, *, ConsumerARN: str, ShardId: str, StartingPosition: dict[str, Any]) -> Any:
        self.subscriptions.append(StartingPosition)
        self.subscribed.set()
        return {"EventStream": self.events}

    def get_shard_iterator(self, **kw: Any) -> Any:
        return {"ShardIterator": "iterator"}

    def get_records(self, **kw: Any) -> Any:
        self.get_records_calls += 1
        return {"Records": [], "NextShardIterator": "iterator", "MillisBehindLatest": 0}


def start_poller(client: PushClient, stop: threading.Event) -> tuple[EfoFeed, queue.Queue[Batch]]:
    """A poller of `businesses` resuming after sequence number 100 through an EFO feed on `client`."""
    feed = EfoFeed(cast(Any, client), ErrorContext("http://kinesis.test", "us-east-1"), "seo_", lambda arn: CONSUMER)
    shards = ShardSet.from_checkpoints(feed, "businesses", STREAM, SLOW, [Checkpoint("businesses", STREAM, SHARD,
                                                                                     sequence_number="100")])
    table = TableState(BUSINESSES)
    table.tailer = TableTailer(cast(Source, None), BUSINESSES, shards, SLOW, 0)
    shards.last_describe = time.monotonic()  # listed just now: the test is about records, not the shard list
    batches: queue.Queue[Batch] = queue.Queue()
    PollerThread(table, batches, stop, {}, max_backoff=30.0).start()
    return feed, batches


def next_records(batches: queue.Queue[Batch]) -> list[str]:
    """The sequence numbers of the next batch that carries records ([] when none comes within WAIT)."""
    deadline = time.monotonic() + WAIT
    while (left := deadline - time.monotonic()) > 0:
        try:
            batch = batches.get(timeout=left)
        except queue.Empty:
            break
        if batch.records:
            return [r["dynamodb"]["SequenceNumber"] for r in batch.records]
    return []


def test_a_pushed_record_wakes_the_poller_without_a_get_records_call():
    """Records pushed one after another each reach the writer's queue as they are pushed, though the
    shard's next poll is a minute away; the subscription's tip is answered from memory: no GetRecords."""
    client = PushClient()
    stop = threading.Event()
    feed, batches = start_poller(client, stop)
    try:
        assert client.subscribed.wait(WAIT)
        for seq in (101, 102, 103):
            client.events.push(seq)
            got = next_records(batches)
            assert got == [str(seq)], f"record {seq} pushed, the poller handed on {got}"
        assert client.get_records_calls == 0 and feed.get_records_calls == 0
    finally:
        stop.set()
        client.events.close()


def wait_for_events(feed: EfoFeed, n: int) -> None:
    """Until the feed's subscription readers have received `n` events (an error or the end counts one)."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + WAIT
    while sum(seen.values()) < n:
        assert time.monotonic() < deadline, f"only {sum(seen.values())} of {n} events received"
        seen = feed.wait_pushed(STREAM, seen, 1.0, threading.Event())


def test_an_error_on_the_event_stream_reaches_the_next_call_and_the_subscription_is_renewed():
    """The reader thread hands the stream's error to the feed's next call (the table backs off as for
    any AWS error), and the call after subscribes again from the last record delivered."""
    client = PushClient()
    feed = EfoFeed(cast(Any, client), ErrorContext("http://kinesis.test", "us-east-1"), "seo_", lambda arn: CONSUMER)
    at = make_position(STREAM, SHARD, "after:100", "iterator")
    assert feed.get_records(at, 1000, "businesses").records == []  # subscribed at the tip: nothing yet
    client.events.push(101)
    wait_for_events(feed, 1)
    page = feed.get_records(at, 1000, "businesses")
    assert [r["dynamodb"]["SequenceNumber"] for r in page.records] == ["101"]
    assert page.next_iterator is not None
    client.events.q.put(ReadTimeoutError(endpoint_url="http://kinesis.test"))
    wait_for_events(feed, 2)
    with pytest.raises(SourceError):
        feed.get_records(page.next_iterator, 1000, "businesses")
    feed.get_records(page.next_iterator, 1000, "businesses")
    assert client.subscriptions[-1] == {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "101"}
    assert len(client.subscriptions) == 2 and feed.renewals == 1 and client.get_records_calls == 0
