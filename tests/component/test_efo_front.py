"""The EFO front on moto, read by boto3's own client: what AWS's SubscribeToShard and consumer calls promise."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.exceptions as bexc
import pytest
from botocore.config import Config

from tests.support.efo_front import MAX_CONSUMERS, EfoFront
from tests.support.harness import wait_until


@pytest.fixture
def front(dynamo_endpoint):
    with EfoFront(dynamo_endpoint, lifetime=1.0, idle_event=0.3) as f:
        yield f


def _client(endpoint: str):
    # One attempt: botocore would retry LimitExceededException as a throttle, with back-off.
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def _stream(kinesis, shards: int = 1) -> str:
    kinesis.create_stream(StreamName="s", ShardCount=shards)
    return str(kinesis.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["StreamARN"])


def _events(kinesis, consumer: str, shard: str, position: dict) -> list[dict]:
    resp = kinesis.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition=position)
    return [e["SubscribeToShardEvent"] for e in resp["EventStream"] if "SubscribeToShardEvent" in e]


def test_records_are_pushed_from_each_starting_position_until_the_subscription_ends(front):
    """TRIM_HORIZON, AT_/AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP and LATEST start where AWS says; the
    stream ends after the front's lifetime; the continuation is the last record pushed."""
    kinesis = _client(front.endpoint)
    arn = _stream(kinesis)
    seqs = [kinesis.put_record(StreamARN=arn, Data=f"r{i}".encode(), PartitionKey="p")["SequenceNumber"]
            for i in range(3)]
    shard = kinesis.list_shards(StreamARN=arn)["Shards"][0]["ShardId"]
    consumers = [kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=f"c{i}")["Consumer"]["ConsumerARN"]
                 for i in range(5)]
    positions = [{"Type": "TRIM_HORIZON"}, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": seqs[1]},
                 {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seqs[1]},
                 {"Type": "AT_TIMESTAMP", "Timestamp": time.time() + 60}, {"Type": "LATEST"}]
    started = time.monotonic()
    with ThreadPoolExecutor(len(positions)) as pool:  # five subscribers at once, as a fleet has
        pushed, at, after, when, latest = pool.map(lambda c, p: _events(kinesis, c, shard, p), consumers, positions)
    assert 1.0 <= time.monotonic() - started < 3.0
    data = [r["Data"] for e in pushed for r in e["Records"]]
    assert data == [b"r0", b"r1", b"r2"] and pushed[-1]["ContinuationSequenceNumber"] == seqs[-1]
    first = next(e for e in pushed if e["Records"])
    assert abs(first["Records"][0]["ApproximateArrivalTimestamp"].timestamp() - time.time()) < 30
    assert [r["Data"] for e in at for r in e["Records"]] == [b"r1", b"r2"]
    assert [r["Data"] for e in after for r in e["Records"]] == [b"r2"]
    assert [r for e in when + latest for r in e["Records"]] == []
    assert latest[-1]["ContinuationSequenceNumber"] == seqs[-1]
    assert front.stats()["ended"] == 5


def test_a_record_put_through_the_front_is_pushed_without_waiting_for_the_tails_tick(dynamo_endpoint):
    """The front's own tail reads moto every 30 s here; a record put through the front reaches the
    subscriber long before that, as AWS pushes a record when it arrives."""
    with EfoFront(dynamo_endpoint, lifetime=20.0, idle_event=0.3, poll=30.0) as front:
        kinesis = _client(front.endpoint)
        arn = _stream(kinesis)
        shard = kinesis.list_shards(StreamARN=arn)["Shards"][0]["ShardId"]
        consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
        pushed: list[dict] = []
        arrived = threading.Event()

        def subscribe() -> None:
            resp = kinesis.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "LATEST"})
            for e in resp["EventStream"]:
                records = e.get("SubscribeToShardEvent", {}).get("Records", [])
                if records:
                    pushed.extend(records)
                    arrived.set()
                    return

        threading.Thread(target=subscribe, name="test-subscriber", daemon=True).start()
        wait_until(lambda: front.stats()["active"] == 1, what="the subscription open")
        kinesis.put_record(StreamARN=arn, Data=b"now", PartitionKey="p")
        assert arrived.wait(15.0), "the record waited for the tail's own tick"
        assert [r["Data"] for r in pushed] == [b"now"]


def test_a_resubscription_within_5_seconds_is_refused(front):
    """The same consumer and shard again under 5 s after the last subscription: ResourceInUseException."""
    kinesis = _client(front.endpoint)
    arn = _stream(kinesis)
    shard = kinesis.list_shards(StreamARN=arn)["Shards"][0]["ShardId"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
    _events(kinesis, consumer, shard, {"Type": "LATEST"})
    with pytest.raises(bexc.ClientError) as refused:
        kinesis.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "LATEST"})
    assert refused.value.response["Error"]["Code"] == "ResourceInUseException"
    assert front.stats()["refused"] == 1


def test_consumers_are_twenty_a_stream_and_a_name_is_registered_once(front):
    """The 21st registration is LimitExceededException, a second of one name ResourceInUseException;
    Describe, List and Deregister answer from the same registry."""
    kinesis = _client(front.endpoint)
    arn = _stream(kinesis)
    for i in range(MAX_CONSUMERS):
        kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=f"host-{i}")
    for name, code in (("host-0", "ResourceInUseException"), ("host-x", "LimitExceededException")):
        with pytest.raises(bexc.ClientError) as e:
            kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=name)
        assert e.value.response["Error"]["Code"] == code
    assert len(kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]) == MAX_CONSUMERS
    kinesis.deregister_stream_consumer(StreamARN=arn, ConsumerName="host-3")
    with pytest.raises(bexc.ClientError) as gone:
        kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="host-3")
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    desc = kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="host-4")["ConsumerDescription"]
    assert desc["ConsumerStatus"] == "ACTIVE"


def test_a_closed_shard_ends_with_no_continuation_and_its_child_shards(front):
    """After a split, the parent's subscription pushes its records, then an event naming the children."""
    kinesis = _client(front.endpoint)
    arn = _stream(kinesis)
    kinesis.put_record(StreamARN=arn, Data=b"before", PartitionKey="p")
    parent = kinesis.list_shards(StreamARN=arn)["Shards"][0]
    middle = str(int(parent["HashKeyRange"]["EndingHashKey"]) // 2)
    kinesis.split_shard(StreamName="s", ShardToSplit=parent["ShardId"], NewStartingHashKey=middle)
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
    pushed = _events(kinesis, consumer, parent["ShardId"], {"Type": "TRIM_HORIZON"})
    assert [r["Data"] for e in pushed for r in e["Records"]] == [b"before"]
    assert pushed[-1].get("ContinuationSequenceNumber") is None
    children = {c["ShardId"] for c in pushed[-1]["ChildShards"]}
    assert len(children) == 2 and parent["ShardId"] not in children
