"""An in-process fake of Kinesis Data Streams that follows AWS where moto does not.

`FakeKinesis` keeps streams under a fake clock (its own, or a FakeWorld's). It answers the calls of
`aws/kinesis_efo.py`'s `EfoApi` (the polling calls of `aws/kinesis.py`'s `KinesisApi` and
the enhanced fan-out ones) as AWS does: 56-digit sequence numbers, ListShards paged with a
NextToken that must come alone, shards split and merged (a merged shard names its parent and its
adjacent parent), a closed shard's end as a null NextShardIterator plus ChildShards, iterators that
expire after 5 minutes, records trimmed after the retention, and ProvisionedThroughputExceeded
once a shard is read more than 5 times in one second (by everyone together); consumers that are
CREATING for a moment, 20 a stream, and SubscribeToShard as an event stream that ends after 5
minutes and is refused within 5 seconds of the last one.

DynamoDB's side is `put_change`: one item change as the JSON document DynamoDB writes, held
`lateness` seconds at most before it arrives, arriving in a shuffled order when `reorder`, and
more than once with probability `duplicate` (AWS says records may do all three). `forward_world`
plays DynamoDB for a FakeWorld: every change the world's tables made since the last call goes in.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seo_sync import codec
from seo_sync.aws.kinesis_efo import EfoApi
from seo_sync.aws.kinesis_records import wrap
from tests.support.fake_streams import FakeWorld, client_error

ITERATOR_TTL = 300.0  # Kinesis shard iterators expire after 5 minutes
RETENTION = 86400.0  # the default retention: 24 hours
READS_PER_SECOND = 5  # GetRecords calls a shard a second, for every reader together
MAX_CONSUMERS = 20  # registered consumers a stream (50 in On-demand Advantage)
SUBSCRIPTION_SECONDS = 300.0  # a SubscribeToShard event stream ends after 5 minutes
RESUBSCRIBE_SECONDS = 5.0  # AWS refuses a new subscription of the same consumer and shard sooner
SEQ_BASE = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898  # 56 digits


@dataclass
class KShard:
    """One shard: its records (arrival order is sequence order) and lineage."""

    shard_id: str
    parent: str | None = None
    adjacent_parent: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    trimmed: int = 0
    closed: bool = False
    children: list[str] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)  # times of GetRecords calls in the last second

    def sequence_range(self) -> dict[str, str]:
        """The shard's SequenceNumberRange as AWS lists it."""
        first = self.records[0]["SequenceNumber"] if self.records else str(SEQ_BASE)
        rng = {"StartingSequenceNumber": first}
        if self.closed:
            rng["EndingSequenceNumber"] = self.records[-1]["SequenceNumber"] if self.records else first
        return rng


@dataclass
class KStream:
    """One stream: its shards in creation order."""

    arn: str
    shards: list[KShard] = field(default_factory=list)
    retention: float = RETENTION

    def shard(self, shard_id: str) -> KShard:
        """The shard named `shard_id` (ResourceNotFoundException if none)."""
        for s in self.shards:
            if s.shard_id == shard_id:
                return s
        raise client_error("ResourceNotFoundException", f"Shard {shard_id} not found", "GetShardIterator")

    def open_shards(self) -> list[KShard]:
        """The shards that still take records."""
        return [s for s in self.shards if not s.closed]


class FakeKinesis:
    """Kinesis streams, written as DynamoDB writes them and read as AWS answers; see the module docstring."""

    def __init__(self, clock: Callable[[], float] | None = None, *, seed: int = 0, page_limit: int = 1000) -> None:
        self._now = 1_700_000_000.0
        self.clock = clock or (lambda: self._now)
        self.rng = random.Random(seed)
        self.streams: dict[str, KStream] = {}
        self.iterators: dict[str, tuple[str, str, int, float]] = {}
        self.page_limit = page_limit
        self.reorder = False
        self.duplicate = 0.0
        self.lateness = 0.0
        self.throttle_next = 0
        self.calls: dict[str, int] = {}
        self.throttled = 0
        self.pending: list[tuple[float, str, str, bytes]] = []  # (arrive at, arn, partition key, data)
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._forwarded: dict[tuple[str, str], int] = {}
        self.consumers: dict[tuple[str, str], dict[str, Any]] = {}
        self.consumer_creating = 2.0  # seconds a new consumer stays CREATING
        self.registrations = 0
        self.subscribed_at: dict[tuple[str, str], float] = {}
        self.pushed = 0  # events pushed with records or empty

    def advance(self, seconds: float) -> None:
        """Move this fake's own clock (when it was not given one)."""
        self._now += seconds

    # -- the operator's side ---------------------------------------------------------------------

    def create_stream(self, name: str, shards: int = 1, account: str = "123456789012") -> str:
        """A stream of `shards` open shards; its ARN."""
        arn = f"arn:aws:kinesis:us-east-1:{account}:stream/{name}"
        stream = KStream(arn)
        self.streams[arn] = stream
        for _ in range(shards):
            self._new_shard(stream)
        return arn

    def _new_shard(self, stream: KStream, parent: str | None = None, adjacent: str | None = None) -> KShard:
        shard = KShard(f"shardId-{len(stream.shards):012d}", parent, adjacent)
        stream.shards.append(shard)
        return shard

    def split(self, arn: str, shard_id: str) -> tuple[str, str]:
        """SplitShard: close `shard_id`, open two children."""
        self.deliver()
        stream = self.streams[arn]
        parent = stream.shard(shard_id)
        parent.closed = True
        kids = (self._new_shard(stream, shard_id), self._new_shard(stream, shard_id))
        parent.children = [k.shard_id for k in kids]
        return kids[0].shard_id, kids[1].shard_id

    def merge(self, arn: str, shard_id: str, adjacent_id: str) -> str:
        """MergeShards: close both, open one child naming both parents."""
        self.deliver()
        stream = self.streams[arn]
        a, b = stream.shard(shard_id), stream.shard(adjacent_id)
        a.closed = b.closed = True
        child = self._new_shard(stream, shard_id, adjacent_id)
        a.children = b.children = [child.shard_id]
        return child.shard_id

    def trim(self, arn: str) -> int:
        """Drop records older than the retention; how many went."""
        now, gone = self.clock(), 0
        for s in self.streams[arn].shards:
            while s.trimmed < len(s.records) and \
                    now - s.records[s.trimmed]["ApproximateArrivalTimestamp"].timestamp() > self.streams[arn].retention:
                s.trimmed += 1
                gone += 1
        return gone

    # -- DynamoDB's side ------------------------------------------------------------------------

    def put_change(self, arn: str, table: str, event: str, keys: dict[str, Any], new: dict[str, Any] | None,
                   old: dict[str, Any] | None, created: float, *, delay: float | None = None) -> None:
        """One item change (images in AttributeValue form) written to the stream as DynamoDB writes it,
        arriving `delay` seconds from now (default: a random share of `lateness`)."""
        data = wrap(table, event, codec.item_to_ddb_json(keys),
                    None if new is None else codec.item_to_ddb_json(new),
                    None if old is None else codec.item_to_ddb_json(old), round(created * 1_000_000),
                    event_id=f"ev{next(self._ids)}")
        pk = table + "|" + "|".join(str(v.get("S")) for v in keys.values())
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            late = self.rng.random() * self.lateness if delay is None else delay
            self.pending.append((self.clock() + late, arn, pk, data))
        if not self.lateness:
            self.deliver()

    def deliver(self) -> None:
        """Records whose time has come arrive in their shards (shuffled when `reorder`)."""
        now = self.clock()
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        if self.reorder:
            self.rng.shuffle(due)
        for _, arn, pk, data in due:
            stream = self.streams[arn]
            opens = stream.open_shards()
            shard = opens[zlib.crc32(pk.encode()) % len(opens)]
            shard.records.append({"SequenceNumber": str(SEQ_BASE + next(self._seq) * 1000), "Data": data,
                                  "PartitionKey": pk, "ApproximateArrivalTimestamp": datetime.fromtimestamp(now, UTC)})

    def forward_world(self, world: FakeWorld, table_arns: dict[str, str]) -> int:
        """Play DynamoDB for `world`: each change its tables emitted since the last call goes to the stream
        of its table (DynamoDB table name -> ARN); how many."""
        n = 0
        for table, arn in table_arns.items():
            for shard in world.stream(table).shards:
                done = self._forwarded.get((table, shard.shard_id), 0)
                for rec, at in zip(shard.records[done:], shard.record_times[done:], strict=True):
                    dyn = rec["dynamodb"]
                    self.put_change(arn, table, rec["eventName"], dyn["Keys"], dyn.get("NewImage"),
                                    dyn.get("OldImage"), at + n * 1e-6)
                    n += 1
                self._forwarded[(table, shard.shard_id)] = len(shard.records)
        return n

    # -- the reader's side: the calls of KinesisApi ---------------------------------------------

    def _stream(self, arn: str, op: str) -> KStream:
        if arn not in self.streams:
            raise client_error("ResourceNotFoundException", f"Stream {arn} not found", op)
        return self.streams[arn]

    def list_shards(self, *, StreamARN: str = "", NextToken: str = "", MaxResults: int = 1000) -> Any:
        """ListShards: a page of shards; NextToken must come without the stream."""
        self.deliver()
        if NextToken and StreamARN:
            raise client_error("InvalidArgumentException", "NextToken and StreamARN cannot be provided together",
                               "ListShards")
        if NextToken:
            arn, _, start = NextToken.rpartition("#")
            offset = int(start)
        else:
            arn, offset = StreamARN, 0
        stream = self._stream(arn, "ListShards")
        size = min(MaxResults, self.page_limit)
        page = stream.shards[offset:offset + size]
        out: dict[str, Any] = {"Shards": [self._shard_json(s) for s in page]}
        if offset + size < len(stream.shards):
            out["NextToken"] = f"{arn}#{offset + size}"
        return out

    @staticmethod
    def _shard_json(s: KShard) -> dict[str, Any]:
        out: dict[str, Any] = {"ShardId": s.shard_id, "SequenceNumberRange": s.sequence_range(),
                               "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"}}
        if s.parent:
            out["ParentShardId"] = s.parent
        if s.adjacent_parent:
            out["AdjacentParentShardId"] = s.adjacent_parent
        return out

    def get_shard_iterator(self, *, StreamARN: str, ShardId: str, ShardIteratorType: str,
                           StartingSequenceNumber: str = "", Timestamp: datetime | None = None) -> Any:
        """GetShardIterator: the five kinds AWS offers."""
        self.deliver()
        shard = self._stream(StreamARN, "GetShardIterator").shard(ShardId)
        seqs = [int(r["SequenceNumber"]) for r in shard.records]
        if ShardIteratorType == "TRIM_HORIZON":
            pos = shard.trimmed
        elif ShardIteratorType == "LATEST":
            pos = len(shard.records)
        elif ShardIteratorType in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if not StartingSequenceNumber.isdigit() or (seqs and int(StartingSequenceNumber) > seqs[-1]):
                raise client_error("InvalidArgumentException", "StartingSequenceNumber is invalid",
                                   "GetShardIterator")
            wanted = int(StartingSequenceNumber)
            pos = sum(1 for s in seqs if s < wanted or (ShardIteratorType == "AFTER_SEQUENCE_NUMBER" and s == wanted))
            pos = max(pos, shard.trimmed)
        elif ShardIteratorType == "AT_TIMESTAMP" and Timestamp is not None:
            pos = sum(1 for r in shard.records if r["ApproximateArrivalTimestamp"] < Timestamp)
            pos = max(pos, shard.trimmed)
        else:
            raise client_error("InvalidArgumentException", f"bad iterator type {ShardIteratorType}",
                               "GetShardIterator")
        return {"ShardIterator": self._iterator(StreamARN, ShardId, pos)}

    def _iterator(self, arn: str, shard_id: str, pos: int) -> str:
        token = f"AAAAAAAAAAE{next(self._ids):08d}{zlib.crc32(shard_id.encode()):010d}"
        self.iterators[token] = (arn, shard_id, pos, self.clock())
        return token

    def get_records(self, *, ShardIterator: str, Limit: int = 10000, StreamARN: str = "") -> Any:
        """GetRecords: up to `Limit` records, the next iterator (null at a closed shard's end, with ChildShards)."""
        self.deliver()
        now = self.clock()
        if ShardIterator not in self.iterators:
            raise client_error("InvalidArgumentException", "ShardIterator is invalid", "GetRecords")
        arn, shard_id, pos, issued = self.iterators[ShardIterator]
        if now - issued > ITERATOR_TTL:
            raise client_error("ExpiredIteratorException", "Iterator expired", "GetRecords")
        shard = self._stream(arn, "GetRecords").shard(shard_id)
        shard.calls = [t for t in shard.calls if now - t < 1.0] + [now]
        self.calls[shard_id] = self.calls.get(shard_id, 0) + 1
        if self.throttle_next > 0 or len(shard.calls) > READS_PER_SECOND:
            self.throttle_next = max(0, self.throttle_next - 1)
            self.throttled += 1
            raise client_error("ProvisionedThroughputExceededException", "Rate exceeded for shard", "GetRecords")
        pos = max(pos, shard.trimmed)
        records = shard.records[pos:pos + min(Limit, 10000)]
        end = pos + len(records)
        behind = 0.0
        if end < len(shard.records):
            behind = now - shard.records[end]["ApproximateArrivalTimestamp"].timestamp()
        out: dict[str, Any] = {"Records": [dict(r) for r in records], "MillisBehindLatest": int(behind * 1000)}
        if shard.closed and end >= len(shard.records):
            out["NextShardIterator"] = None
            out["ChildShards"] = [{"ShardId": c, "ParentShards": [shard_id], "HashKeyRange": {}}
                                  for c in shard.children]
        else:
            out["NextShardIterator"] = self._iterator(arn, shard_id, end)
        return out

    # -- enhanced fan-out ------------------------------------------------------------------------

    def register_stream_consumer(self, *, StreamARN: str, ConsumerName: str) -> Any:
        """RegisterStreamConsumer: CREATING for `consumer_creating` seconds, 20 a stream at most."""
        self._stream(StreamARN, "RegisterStreamConsumer")
        mine = [c for (arn, _), c in self.consumers.items() if arn == StreamARN]
        if (StreamARN, ConsumerName) in self.consumers:
            raise client_error("ResourceInUseException", f"Consumer {ConsumerName} exists", "RegisterStreamConsumer")
        if len(mine) >= MAX_CONSUMERS:
            raise client_error("LimitExceededException", f"Stream has {len(mine)} consumers, the maximum",
                               "RegisterStreamConsumer")
        self.registrations += 1
        arn = f"{StreamARN}/consumer/{ConsumerName}:{int(self.clock())}"
        self.consumers[(StreamARN, ConsumerName)] = {"ConsumerName": ConsumerName, "ConsumerARN": arn,
                                                     "created": self.clock()}
        return {"Consumer": self._consumer_json(StreamARN, ConsumerName)}

    def _consumer_json(self, stream_arn: str, name: str) -> dict[str, Any]:
        c = self.consumers[(stream_arn, name)]
        status = "ACTIVE" if self.clock() - c["created"] >= self.consumer_creating else "CREATING"
        return {"ConsumerName": name, "ConsumerARN": c["ConsumerARN"], "ConsumerStatus": status,
                "StreamARN": stream_arn}

    def describe_stream_consumer(self, *, StreamARN: str, ConsumerName: str) -> Any:
        """DescribeStreamConsumer."""
        if (StreamARN, ConsumerName) not in self.consumers:
            raise client_error("ResourceNotFoundException", f"Consumer {ConsumerName} not found",
                               "DescribeStreamConsumer")
        return {"ConsumerDescription": self._consumer_json(StreamARN, ConsumerName)}

    def subscribe_to_shard(self, *, ConsumerARN: str, ShardId: str, StartingPosition: dict[str, Any]) -> Any:
        """SubscribeToShard: an event stream that ends after 5 minutes; a second one within 5 s is refused."""
        stream_arn = ConsumerARN.split("/consumer/")[0]
        last = self.subscribed_at.get((ConsumerARN, ShardId))
        if last is not None and self.clock() - last < RESUBSCRIBE_SECONDS:
            raise client_error("ResourceInUseException", "Another subscription is active or ended < 5 s ago",
                               "SubscribeToShard")
        self.subscribed_at[(ConsumerARN, ShardId)] = self.clock()
        first = self.get_shard_iterator(StreamARN=stream_arn, ShardId=ShardId,
                                        ShardIteratorType=StartingPosition["Type"],
                                        StartingSequenceNumber=StartingPosition.get("SequenceNumber", ""))
        return {"EventStream": self._events(stream_arn, first["ShardIterator"], self.clock())}

    def _events(self, stream_arn: str, iterator: str, started: float) -> Iterator[dict[str, Any]]:
        while self.clock() - started < SUBSCRIPTION_SECONDS:
            self.deliver()
            _, shard_id, pos, _ = self.iterators[iterator]
            shard = self.streams[stream_arn].shard(shard_id)
            records = shard.records[pos:pos + 100]
            end = pos + len(records)
            iterator = self._iterator(stream_arn, shard_id, end)
            event: dict[str, Any] = {"Records": [dict(r) for r in records], "MillisBehindLatest": 0,
                                     "ContinuationSequenceNumber": (records[-1]["SequenceNumber"] if records
                                                                    else str(SEQ_BASE))}
            if shard.closed and end >= len(shard.records):
                event["ContinuationSequenceNumber"] = None
                event["ChildShards"] = [{"ShardId": c, "ParentShards": [shard_id]} for c in shard.children]
                yield {"SubscribeToShardEvent": event}
                return
            self.pushed += 1
            yield {"SubscribeToShardEvent": event}

    def describe_stream_summary(self, *, StreamARN: str) -> Any:
        """DescribeStreamSummary: what the feed reads of it."""
        stream = self._stream(StreamARN, "DescribeStreamSummary")
        return {"StreamDescriptionSummary": {"StreamARN": StreamARN, "StreamStatus": "ACTIVE",
                                             "RetentionPeriodHours": int(stream.retention / 3600),
                                             "OpenShardCount": len(stream.open_shards())}}


if TYPE_CHECKING:
    # Declared against the interface of the real client it stands in for: mypy fails here when the
    # fake drifts from what KinesisFeed calls (the fake is in mypy's files).
    _fake_kinesis_client: EfoApi = FakeKinesis()
