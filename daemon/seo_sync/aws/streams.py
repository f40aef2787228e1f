"""DynamoDB Streams: the shard list, shard iterators and record pages, through boto3's client.

`StreamReader` is the DynamoDB Streams implementation of the change feed the sync engine reads
(`seo_sync/feed.py`). It takes any client shaped like `StreamsApi` (boto3's `dynamodbstreams` client, or
the fake in the tests that scripts what moto cannot: splits, trimming, expiry, throttling).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from seo_sync.aws import answers, raw_check
from seo_sync.aws.session import CAUGHT, ErrorContext
from seo_sync.errors import BadInput, IncompleteAnswer
from seo_sync.feed import RecordsPage, ShardInfo, StartKind, StreamInfo

DESCRIBE_STREAM_PAGE = 100  # shards a DescribeStream page holds at most


class StreamsApi(Protocol):
    """The calls seo-sync makes on boto3's `dynamodbstreams` client, in its keyword form."""

    def describe_stream(self, *, StreamArn: str, Limit: int = ..., ExclusiveStartShardId: str = ...) -> Any:
        """DescribeStream: one page of shards."""

    def get_shard_iterator(self, *, StreamArn: str, ShardId: str, ShardIteratorType: str,
                           SequenceNumber: str = ...) -> Any:
        """GetShardIterator."""

    def get_records(self, *, ShardIterator: str, Limit: int = ...) -> Any:
        """GetRecords: one page of records and the next iterator (absent at a closed shard's end)."""


def member(resp: Any, name: str, operation: str) -> Any:
    """`resp[name]`, or IncompleteAnswer when the answer lacks a member the operation always answers with."""
    if not isinstance(resp, dict) or resp.get(name) is None:
        raise IncompleteAnswer(f"{operation}: the answer has no {name}",
                               hint="the network cut or garbled it; the call is retried")
    return resp[name]


class StreamReader:
    """DynamoDB Streams through a boto3-shaped client, errors translated, calls counted."""

    per_item_order = True  # within a shard, an item's records come in the order of its changes
    max_lateness = 0.0

    def __init__(self, client: StreamsApi, context: ErrorContext, clock: answers.ServerClock | None = None) -> None:
        self.client = client
        self.ctx = context
        answers.install(client, clock)  # a cut-off answer is an error, never an empty one
        raw_check.install_checked(client)  # GetRecords answers read by orjson, once checked against botocore
        self.get_records_calls = 0
        self.describe_stream_calls = 0

    def describe_stream(self, arn: str, table: str | None = None) -> StreamInfo:
        """All shards of the stream, paging DescribeStream ourselves (boto3 has no paginator)."""
        shards: list[ShardInfo] = []
        start: str | None = None
        status, view = "UNKNOWN", None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": arn, "Limit": DESCRIBE_STREAM_PAGE}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            try:
                self.describe_stream_calls += 1
                desc = member(self.client.describe_stream(**kwargs), "StreamDescription", "DescribeStream")
            except CAUGHT as e:
                raise self.ctx.translate(e, "DescribeStream", table) from None
            status = desc.get("StreamStatus", status)
            view = desc.get("StreamViewType", view)
            for s in desc.get("Shards", []):
                rng = s.get("SequenceNumberRange", {})
                shards.append(ShardInfo(s["ShardId"], s.get("ParentShardId"),
                                        rng.get("StartingSequenceNumber"), rng.get("EndingSequenceNumber")))
            start = desc.get("LastEvaluatedShardId")
            if not start:
                return StreamInfo(arn, status, view, shards)

    def shard_iterator(self, arn: str, shard_id: str, kind: StartKind, seq: str | None = None,
                       table: str | None = None, at: float | None = None) -> str:
        """A shard iterator: TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER.

        DynamoDB Streams has no position in time: AT_TIMESTAMP is refused as AWS refuses a kind it
        does not know, without asking it."""
        if kind == "AT_TIMESTAMP":
            raise BadInput(f"GetShardIterator on {table or 'DynamoDB'} at {self.ctx.endpoint} ({self.ctx.region}): "
                           "rejected: DynamoDB Streams has no AT_TIMESTAMP position",
                           hint="position a DynamoDB stream at TRIM_HORIZON, LATEST or a sequence number")
        kwargs: dict[str, Any] = {"StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if seq is not None:
            kwargs["SequenceNumber"] = seq
        try:
            return str(member(self.client.get_shard_iterator(**kwargs), "ShardIterator", "GetShardIterator"))
        except CAUGHT as e:
            raise self.ctx.translate(e, "GetShardIterator", table) from None

    def get_records(self, iterator: str, limit: int = 1000, table: str | None = None) -> RecordsPage:
        """One GetRecords call; IncompleteAnswer (never a closed shard) for an answer without Records."""
        self.get_records_calls += 1
        try:
            resp = self.client.get_records(ShardIterator=iterator, Limit=limit)
        except CAUGHT as e:
            raise self.ctx.translate(e, "GetRecords", table) from None
        return RecordsPage(member(resp, "Records", "GetRecords"), resp.get("NextShardIterator"))

    def wait_pushed(self, arn: str, seen: dict[str, int], timeout: float, stop: threading.Event) -> dict[str, int]:
        """Polled, nothing is pushed: wait `timeout` seconds (less when `stop` is set)."""
        stop.wait(timeout)
        return {}

    def status(self) -> dict[str, Any]:
        """The feed's part of status: which source, and its calls (per shard figures are per table,
        in the table's own status, because each table has its own DynamoDB stream)."""
        return {"kind": "dynamodb-streams", "get_records_calls": self.get_records_calls,
                "describe_stream_calls": self.describe_stream_calls}
