"""Enhanced fan-out on the wire: SubscribeToShard answered in the AWS event-stream framing, decoded by botocore."""

from __future__ import annotations

import threading
import time

import boto3

from seo_sync.aws.kinesis import make_position
from seo_sync.aws.kinesis_efo import EfoFeed
from seo_sync.aws.kinesis_records import wrap
from seo_sync.aws.session import ErrorContext
from seo_sync.changes import to_change
from seo_sync.schema import BUSINESSES
from tests.support.eventstream_server import EventStreamServer, kinesis_event

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/seo-changes"
CONSUMER = STREAM + "/consumer/gen-01:1700000000"
SEQ = "49590338271490256608559692538361571095921575989136588898"


def wait_for_events(feed: EfoFeed, n: int) -> None:
    """Until the feed's subscription reader has received `n` events (the end of the stream counts one)."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while sum(seen.values()) < n:
        assert time.monotonic() < deadline, f"only {sum(seen.values())} of {n} events received"
        seen = feed.wait_pushed(STREAM, seen, 1.0, threading.Event())


def test_subscribe_to_shard_events_are_decoded_and_the_shard_end_is_seen():
    """Records pushed over the wire reach the apply path; the last event (no continuation) ends the shard."""
    data = wrap("seo_businesses", "MODIFY", {"business_id": {"S": "b1"}},
                {"business_id": {"S": "b1"}, "name": {"S": "x"}, "_version": {"N": "7"}}, None, 1_700_000_000_654_321)
    events = [kinesis_event([(SEQ, data)], SEQ), kinesis_event([], None, ["shardId-000000000001"])]
    with EventStreamServer(events) as server:
        client = boto3.client("kinesis", endpoint_url=server.endpoint, region_name="us-east-1")
        feed = EfoFeed(client, ErrorContext(server.endpoint, "us-east-1"), "seo_", lambda arn: CONSUMER)
        start = make_position(STREAM, "shardId-000000000000", "after:100", "pushed")
        feed.get_records(start, 1000, "businesses")  # subscribes; what it pushes is read by the next call
        wait_for_events(feed, 3)
        first = feed.get_records(start, 1000, "businesses")
        (rec,) = first.records
        change = to_change(BUSINESSES, rec)
        assert (change.kind, change.key, change.version, change.seq) == ("upsert", ("b1",), 7, SEQ)
        assert change.created_at == 1_700_000_000.654321
        assert first.next_iterator is None  # the shard's end was received with the record, and read with it
    (request,) = server.requests
    assert request["target"] == "Kinesis_20131202.SubscribeToShard"
    assert request["body"] == {"ConsumerARN": CONSUMER, "ShardId": "shardId-000000000000",
                               "StartingPosition": {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "100"}}


def test_events_received_behind_the_first_are_read_in_the_same_call():
    """Twenty small events already on the wire come back as one page: one event a call would leave the
    host further behind at every call while records arrive faster than it polls."""
    events = []
    for i in range(20):
        data = wrap("seo_businesses", "MODIFY", {"business_id": {"S": f"b{i}"}},
                    {"business_id": {"S": f"b{i}"}, "_version": {"N": "1"}}, None, 1_700_000_000_000_000 + i)
        events.append(kinesis_event([(str(1000 + i), data)], str(1000 + i)))
    with EventStreamServer(events) as server:
        client = boto3.client("kinesis", endpoint_url=server.endpoint, region_name="us-east-1")
        feed = EfoFeed(client, ErrorContext(server.endpoint, "us-east-1"), "seo_", lambda arn: CONSUMER)
        start = make_position(STREAM, "shardId-000000000000", "after:999", "pushed")
        feed.get_records(start, 1000, "businesses")  # subscribes; what it pushes is read by the next call
        wait_for_events(feed, 21)
        page = feed.get_records(start, 1000, "businesses")
    assert [r["dynamodb"]["SequenceNumber"] for r in page.records] == [str(1000 + i) for i in range(20)]
    assert page.next_iterator is not None
    assert feed.get_records_calls == 0
