"""An in-process fake of DynamoDB + DynamoDB Streams that scripts what moto cannot.

`FakeWorld` holds tables, items and streams under a fake clock. `world.streams` follows boto3's
`dynamodbstreams` client API (DescribeStream paged at 100 shards, the four iterator types,
GetRecords with no NextShardIterator at the end of a closed shard) and raises real
`botocore.exceptions.ClientError` codes; `world.dynamodb` is a tiny `dynamodb` client (DescribeTable,
Scan with segments and pages, GetItem). Test knobs: shard splits and rollover, children listed
late, many shards, iterators expiring and records trimmed by the fake clock, throttling, empty
pages in the middle of a shard, malformed records. Hand both clients to
`Source(settings.aws, prefix, dynamodb_client=world.dynamodb, streams_client=world.streams)`.
"""

from __future__ import annotations

import email.utils
import itertools
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from seo_sync.aws.streams import StreamsApi
from seo_sync.aws.tables import DynamoDBApi

ITERATOR_TTL = 900.0  # real iterators expire after 15 minutes
RETENTION = 86400.0  # real streams keep records 24 hours
PAGE = 100  # DescribeStream shards per page
SEQ_START = 999_999_999_999_999_999_000  # 21 digits, becomes 22 after ten records: compare as integers


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    """A ClientError shaped exactly like botocore's."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@dataclass
class FakeShard:
    """One shard: its records (never removed; `trimmed` counts those no longer readable)."""

    shard_id: str
    parent_id: str | None
    created: float
    visible_at: float
    records: list[dict[str, Any]] = field(default_factory=list)
    record_times: list[float] = field(default_factory=list)
    start_seq: int = 0
    end_seq: int | None = None
    trimmed: int = 0
    children: list[str] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        """True once the shard has an ending sequence number."""
        return self.end_seq is not None


@dataclass
class FakeStream:
    """One stream of one table."""

    arn: str
    table: str
    view_type: str
    shards: list[FakeShard] = field(default_factory=list)
    enabled: bool = True

    def shard(self, shard_id: str) -> FakeShard | None:
        """The shard named `shard_id`, if it exists (trimmed-away shards do not)."""
        for s in self.shards:
            if s.shard_id == shard_id:
                return s
        return None


@dataclass
class FakeTable:
    """One table: its key names, items by key, and its current stream."""

    name: str
    key_names: tuple[str, ...]
    items: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    stream_arn: str | None = None


class FakeWorld:
    """Tables, items and streams under one fake clock (`now`, epoch seconds); thread-safe."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.lock = threading.RLock()
        self.tables: dict[str, FakeTable] = {}
        self.streams_by_arn: dict[str, FakeStream] = {}
        self._seq = itertools.count(SEQ_START, 100)
        self._ids = itertools.count(1)
        self._key_shard: dict[tuple[str, tuple[str, ...]], str] = {}
        self.iterators: dict[str, tuple[str, str, int, float]] = {}
        self.throttles: list[tuple[str | None, str]] = []  # (shard or None = any, error code), consumed in order
        self.empty_pages: dict[str, int] = {}
        self.child_listing_delay = 0.0
        self.scan_hook: Callable[[str, int], None] | None = None  # (table, page number) before each Scan page
        self.denied: set[str] = set()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.streams = FakeStreamsClient(self)
        self.dynamodb = FakeDynamoDBClient(self)

    # -- clock -------------------------------------------------------------------------------------

    def clock(self) -> float:
        """The fake wall clock (epoch seconds)."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the fake clock forward."""
        with self.lock:
            self.now += seconds

    # -- tables and streams ------------------------------------------------------------------------

    def create_table(self, name: str, key_names: tuple[str, ...], view_type: str = "NEW_AND_OLD_IMAGES",
                     shards: int = 1) -> str:
        """Create a table with a stream of `shards` open shards; returns the stream ARN."""
        with self.lock:
            self.tables[name] = FakeTable(name, tuple(key_names))
            return self._new_stream(name, view_type, shards)

    def _new_stream(self, name: str, view_type: str, shards: int) -> str:
        label = datetime.fromtimestamp(self.now, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{next(self._ids):03d}"
        arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}/stream/{label}"
        stream = FakeStream(arn, name, view_type)
        for _ in range(shards):
            stream.shards.append(self._make_shard(None))
        self.streams_by_arn[arn] = stream
        self.tables[name].stream_arn = arn
        return arn

    def _make_shard(self, parent: str | None) -> FakeShard:
        n = next(self._ids)
        visible = self.now + (self.child_listing_delay if parent else 0.0)
        return FakeShard(f"shardId-{int(self.now):013d}-{n:08x}", parent, self.now, visible,
                         start_seq=next(self._seq))

    def delete_table(self, name: str) -> None:
        """Delete a table (its stream stays readable, as on AWS, but is no longer the latest)."""
        with self.lock:
            del self.tables[name]
            self._key_shard = {k: v for k, v in self._key_shard.items() if k[0] != name}

    def recreate_table(self, name: str, key_names: tuple[str, ...], shards: int = 1) -> str:
        """Delete and re-create a table empty: a new stream ARN."""
        with self.lock:
            self.delete_table(name)
            return self.create_table(name, key_names, shards=shards)

    def stream(self, table: str) -> FakeStream:
        """The current stream of a table."""
        return self.streams_by_arn[self.tables[table].stream_arn or ""]

    def open_shards(self, table: str) -> list[FakeShard]:
        """The open shards of a table's current stream."""
        return [s for s in self.stream(table).shards if not s.closed]

    def _close(self, shard: FakeShard) -> None:
        shard.end_seq = int(shard.records[-1]["dynamodb"]["SequenceNumber"]) if shard.records else shard.start_seq

    def split(self, table: str, shard_id: str | None = None) -> tuple[str, str]:
        """Close an open shard and open two children; returns their ids."""
        with self.lock:
            stream = self.stream(table)
            parent = stream.shard(shard_id) if shard_id else self.open_shards(table)[0]
            assert parent is not None and not parent.closed
            self._close(parent)
            a, b = self._make_shard(parent.shard_id), self._make_shard(parent.shard_id)
            parent.children = [a.shard_id, b.shard_id]
            stream.shards += [a, b]
            return a.shard_id, b.shard_id

    def rollover(self, table: str, shard_id: str | None = None) -> str:
        """Close an open shard and open one child (the ~4-hourly rollover); returns its id."""
        with self.lock:
            stream = self.stream(table)
            parent = stream.shard(shard_id) if shard_id else self.open_shards(table)[0]
            assert parent is not None and not parent.closed
            self._close(parent)
            child = self._make_shard(parent.shard_id)
            parent.children = [child.shard_id]
            stream.shards.append(child)
            return child.shard_id

    def trim(self, retention: float = RETENTION, table: str | None = None) -> int:
        """Make records older than `retention` unreadable (of one table's streams, or all), and drop
        closed shards fully trimmed."""
        with self.lock:
            dropped = 0
            for stream in self.streams_by_arn.values():
                if table is not None and stream.table != table:
                    continue
                keep = []
                for s in stream.shards:
                    while s.trimmed < len(s.records) and s.record_times[s.trimmed] <= self.now - retention:
                        s.trimmed += 1
                        dropped += 1
                    if s.closed and s.trimmed == len(s.records) and s.created < self.now - retention:
                        continue
                    keep.append(s)
                stream.shards = keep
            return dropped

    def throttle(self, n: int, shard_id: str | None = None,
                 code: str = "ProvisionedThroughputExceededException") -> None:
        """The next `n` GetRecords calls (on `shard_id`, or any) fail with `code`."""
        with self.lock:
            self.throttles += [(shard_id, code)] * n

    def inject_empty_pages(self, shard_id: str, n: int) -> None:
        """The next `n` GetRecords on this shard return no records but a valid next iterator."""
        with self.lock:
            self.empty_pages[shard_id] = self.empty_pages.get(shard_id, 0) + n

    # -- writes --------------------------------------------------------------------------------------

    def _route(self, table: str, key: tuple[str, ...]) -> FakeShard:
        stream = self.stream(table)
        sid = self._key_shard.get((table, key))
        shard = stream.shard(sid) if sid else None
        if shard is None:
            opens = self.open_shards(table)
            shard = opens[zlib.crc32(repr(key).encode()) % len(opens)]
        # A key's writes follow its partition's lineage: closed shard -> one of its children.
        while shard.closed:
            kids = [stream.shard(c) for c in shard.children]
            shard = [k for k in kids if k][zlib.crc32(repr(key).encode()) % len(kids)]
        self._key_shard[(table, key)] = shard.shard_id
        return shard

    def _emit(self, table: str, key: tuple[str, ...], event: str, keys: dict[str, Any],
              new: dict[str, Any] | None, old: dict[str, Any] | None, identity: dict[str, Any] | None) -> dict:
        stream = self.stream(table)
        seq = str(next(self._seq))
        dyn: dict[str, Any] = {"ApproximateCreationDateTime": datetime.fromtimestamp(int(self.now), UTC),
                               "Keys": keys, "SequenceNumber": seq, "SizeBytes": 100,
                               "StreamViewType": stream.view_type}
        if new is not None and stream.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            dyn["NewImage"] = new
        if old is not None and stream.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            dyn["OldImage"] = old
        rec: dict[str, Any] = {"eventID": f"ev{seq[-8:]}", "eventName": event, "eventVersion": "1.1",
                               "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dyn}
        if identity:
            rec["userIdentity"] = identity
        shard = self._route(table, key)
        shard.records.append(rec)
        shard.record_times.append(self.now)
        return rec

    def put(self, table: str, item: dict[str, Any]) -> dict:
        """PutItem: store `item` (AttributeValue form) and emit INSERT or MODIFY."""
        with self.lock:
            t = self.tables[table]
            key = tuple(item[k]["S"] for k in t.key_names)
            old = t.items.get(key)
            t.items[key] = item
            keys = {k: item[k] for k in t.key_names}
            if t.stream_arn is None:
                return {}
            return self._emit(table, key, "MODIFY" if old else "INSERT", keys, item, old, None)

    def delete(self, table: str, key: tuple[str, ...], ttl: bool = False) -> dict | None:
        """DeleteItem (or a TTL expiry): remove the item and emit REMOVE; None if it did not exist."""
        with self.lock:
            t = self.tables[table]
            old = t.items.pop(key, None)
            if old is None:
                return None
            identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if ttl else None
            keys = {k: {"S": v} for k, v in zip(t.key_names, key, strict=True)}
            return self._emit(table, key, "REMOVE", keys, None, old, identity)

    def inject_record(self, table: str, key: tuple[str, ...], record: dict[str, Any]) -> dict:
        """Append an arbitrary (e.g. malformed) record to the shard of `key`, with a fresh sequence number."""
        with self.lock:
            seq = str(next(self._seq))
            rec = dict(record)
            rec["dynamodb"] = {**(record.get("dynamodb") or {}), "SequenceNumber": seq}
            shard = self._route(table, key)
            shard.records.append(rec)
            shard.record_times.append(self.now)
            return rec

    # -- iterators -------------------------------------------------------------------------------------

    def _token(self, arn: str, shard_id: str, pos: int) -> str:
        token = f"it-{next(self._ids)}-{shard_id[-8:]}-{pos}"
        self.iterators[token] = (arn, shard_id, pos, self.now)
        return token


class FakeStreamsClient:
    """The `dynamodbstreams` client API over a FakeWorld."""

    def __init__(self, world: FakeWorld) -> None:
        self.w = world
        self.meta = SimpleNamespace(endpoint_url="fake://streams", region_name="us-east-1")

    def _stream(self, arn: str, op: str) -> FakeStream:
        s = self.w.streams_by_arn.get(arn)
        if s is None:
            raise client_error("ResourceNotFoundException", f"Requested resource not found: Stream: {arn}", op)
        return s

    def describe_stream(self, StreamArn: str, Limit: int = PAGE,
                        ExclusiveStartShardId: str | None = None, **_: Any) -> dict[str, Any]:
        """Shards in creation order, at most `Limit` (<= 100) a page, children hidden until listed."""
        with self.w.lock:
            self.w.calls.append(("describe_stream", {"StreamArn": StreamArn}))
            s = self._stream(StreamArn, "DescribeStream")
            visible = [x for x in s.shards if x.visible_at <= self.w.now]
            start = 0
            if ExclusiveStartShardId:
                ids = [x.shard_id for x in visible]
                start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId in ids else len(ids)
            limit = max(1, min(int(Limit), PAGE))
            page = visible[start:start + limit]
            shards = []
            for x in page:
                rng: dict[str, str] = {"StartingSequenceNumber": str(x.start_seq)}
                if x.end_seq is not None:
                    rng["EndingSequenceNumber"] = str(x.end_seq)
                d: dict[str, Any] = {"ShardId": x.shard_id, "SequenceNumberRange": rng}
                if x.parent_id:
                    d["ParentShardId"] = x.parent_id
                shards.append(d)
            desc: dict[str, Any] = {
                "StreamArn": s.arn, "StreamLabel": s.arn.rsplit("/", 1)[-1],
                "StreamStatus": "ENABLED" if s.enabled else "DISABLED", "StreamViewType": s.view_type,
                "TableName": s.table, "Shards": shards,
            }
            if start + limit < len(visible):
                desc["LastEvaluatedShardId"] = page[-1].shard_id
            return {"StreamDescription": desc}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                           SequenceNumber: str | None = None) -> dict[str, Any]:
        """An iterator of any of the four types; Trimmed for a position older than the retention."""
        op = "GetShardIterator"
        with self.w.lock:
            self.w.calls.append(("get_shard_iterator", {"ShardId": ShardId, "ShardIteratorType": ShardIteratorType,
                                                        "SequenceNumber": SequenceNumber}))
            shard = self._stream(StreamArn, op).shard(ShardId)
            if shard is None:
                raise client_error("ResourceNotFoundException", f"Requested resource not found: Shard: {ShardId}", op)
            if ShardIteratorType == "TRIM_HORIZON":
                pos = shard.trimmed
            elif ShardIteratorType == "LATEST":
                pos = len(shard.records)
            elif ShardIteratorType in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                if SequenceNumber is None:
                    raise client_error("ValidationException", "SequenceNumber required", op)
                want = int(SequenceNumber)
                seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in shard.records]
                if want not in seqs:
                    if seqs and shard.trimmed and want < seqs[shard.trimmed - 1] + 1:
                        raise client_error("TrimmedDataAccessException", "position trimmed", op)
                    raise client_error("ValidationException", f"Invalid SequenceNumber {SequenceNumber}", op)
                pos = seqs.index(want) + (1 if ShardIteratorType == "AFTER_SEQUENCE_NUMBER" else 0)
                if pos < shard.trimmed:
                    raise client_error("TrimmedDataAccessException", "position trimmed", op)
            else:
                raise client_error("ValidationException", f"bad ShardIteratorType {ShardIteratorType}", op)
            return {"ShardIterator": self.w._token(StreamArn, ShardId, pos)}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        """Up to `Limit` records; no NextShardIterator once a closed shard is read to its end."""
        op = "GetRecords"
        with self.w.lock:
            state = self.w.iterators.get(ShardIterator)
            if state is None:
                raise client_error("ValidationException", "Invalid ShardIterator", op)
            arn, shard_id, pos, issued = state
            self.w.calls.append(("get_records", {"ShardId": shard_id}))
            for i, (sid, code) in enumerate(self.w.throttles):
                if sid is None or sid == shard_id:
                    del self.w.throttles[i]
                    raise client_error(code, "Rate exceeded for shard", op,
                                       500 if code == "InternalServerError" else 400)
            if self.w.now - issued > ITERATOR_TTL:
                raise client_error("ExpiredIteratorException", "Iterator expired", op)
            shard = self._stream(arn, op).shard(shard_id)
            if shard is None:
                raise client_error("ResourceNotFoundException", f"Requested resource not found: Shard: {shard_id}", op)
            if pos < shard.trimmed:
                raise client_error("TrimmedDataAccessException", "records trimmed", op)
            if self.w.empty_pages.get(shard_id):
                self.w.empty_pages[shard_id] -= 1
                return {"Records": [], "NextShardIterator": self.w._token(arn, shard_id, pos)}
            page = shard.records[pos:pos + max(1, min(int(Limit), 1000))]
            new_pos = pos + len(page)
            out: dict[str, Any] = {"Records": [dict(r) for r in page]}
            if not (shard.closed and new_pos >= len(shard.records)):
                out["NextShardIterator"] = self.w._token(arn, shard_id, new_pos)
            return out


class FakeDynamoDBClient:
    """A tiny `dynamodb` client over a FakeWorld: DescribeTable, Scan, GetItem (the other calls refuse)."""

    def __init__(self, world: FakeWorld) -> None:
        self.w = world
        self.meta = SimpleNamespace(endpoint_url="fake://dynamodb", region_name="us-east-1")

    def _table(self, name: str, op: str) -> FakeTable:
        if name in self.w.denied:
            raise client_error("AccessDeniedException", f"not authorized to perform {op} on {name}", op)
        t = self.w.tables.get(name)
        if t is None:
            raise client_error("ResourceNotFoundException", f"Requested resource not found: Table: {name}", op)
        return t

    def describe_table(self, TableName: str) -> dict[str, Any]:
        """The table, its stream specification and LatestStreamArn."""
        with self.w.lock:
            t = self._table(TableName, "DescribeTable")
            out: dict[str, Any] = {"TableName": t.name, "TableStatus": "ACTIVE", "ItemCount": len(t.items)}
            stream = self.w.streams_by_arn.get(t.stream_arn or "")
            if stream is not None:
                out["LatestStreamArn"] = stream.arn
                out["StreamSpecification"] = {"StreamEnabled": stream.enabled, "StreamViewType": stream.view_type}
            # DynamoDB's clock, whole seconds, as every real answer carries it
            date = email.utils.formatdate(self.w.now, usegmt=True)
            return {"Table": out, "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {"date": date}}}

    def scan(self, TableName: str, ConsistentRead: bool = False, Segment: int = 0,
             TotalSegments: int = 1, Limit: int = 100, ExclusiveStartKey: dict | None = None,
             **_: Any) -> dict[str, Any]:
        """One page of one segment, in key order; `scan_hook` runs before each page."""
        hook = self.w.scan_hook
        if hook is not None:
            hook(TableName, len(self.w.calls))
        with self.w.lock:
            self.w.calls.append(("scan", {"TableName": TableName, "Segment": Segment}))
            t = self._table(TableName, "Scan")
            keys = sorted(k for k in t.items if zlib.crc32(repr(k).encode()) % TotalSegments == Segment)
            if ExclusiveStartKey:
                after = tuple(ExclusiveStartKey[k]["S"] for k in t.key_names)
                keys = [k for k in keys if k > after]
            page = keys[:Limit]
            out: dict[str, Any] = {"Items": [t.items[k] for k in page], "Count": len(page)}
            if len(keys) > Limit:
                out["LastEvaluatedKey"] = {n: {"S": v} for n, v in zip(t.key_names, page[-1], strict=True)}
            return out

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        """One item by key."""
        with self.w.lock:
            t = self._table(TableName, "GetItem")
            item = t.items.get(tuple(Key[k]["S"] for k in t.key_names))
            # DynamoDB's clock, whole seconds, as every real answer carries it (reads are stamped by it)
            meta = {"HTTPStatusCode": 200, "HTTPHeaders": {"date": email.utils.formatdate(self.w.now, usegmt=True)}}
            return {"Item": item, "ResponseMetadata": meta} if item is not None else {"ResponseMetadata": meta}

    # The rest of DynamoDBApi: the fake world changes its tables through FakeWorld's own methods,
    # so a test that reaches one of these through the client is told so, not answered wrongly.

    def _unscripted(self, op: str) -> AssertionError:
        return AssertionError(f"{op} is not scripted in the fake world: change it through FakeWorld")

    def create_table(self, *, TableName: str, KeySchema: list[dict[str, str]],
                     AttributeDefinitions: list[dict[str, str]], BillingMode: str,
                     StreamSpecification: dict[str, Any]) -> Any:
        """Not scripted: FakeWorld.create_table makes a table."""
        raise self._unscripted("CreateTable")

    def delete_table(self, *, TableName: str) -> Any:
        """Not scripted."""
        raise self._unscripted("DeleteTable")

    def query(self, *, TableName: str, KeyConditionExpression: str, **_: Any) -> Any:
        """Not scripted."""
        raise self._unscripted("Query")

    def put_item(self, *, TableName: str, Item: dict[str, Any], **_: Any) -> Any:
        """Not scripted: FakeWorld.put writes an item and its stream record."""
        raise self._unscripted("PutItem")

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> Any:
        """Not scripted."""
        raise self._unscripted("BatchWriteItem")

    def describe_kinesis_streaming_destination(self, *, TableName: str) -> Any:
        """Not scripted: the fake world has no Kinesis destination."""
        raise self._unscripted("DescribeKinesisStreamingDestination")

    def enable_kinesis_streaming_destination(self, *, TableName: str, StreamArn: str, **_: Any) -> Any:
        """Not scripted."""
        raise self._unscripted("EnableKinesisStreamingDestination")


# -- helpers for tests that run on the fake world ---------------------------------------------------


def fake_source(world: FakeWorld, prefix: str = "seo_") -> Any:
    """A seo_sync.aws.tables.Source over the fake clients."""
    from seo_sync.aws.tables import Source
    from seo_sync.config import AwsSettings

    return Source(AwsSettings(region="us-east-1"), prefix, dynamodb_client=world.dynamodb,
                  streams_client=world.streams)


def create_tables(world: FakeWorld, names: list[str] | None = None, prefix: str = "seo_", shards: int = 1) -> None:
    """Create the schema's tables (all, or `names`) in the fake world."""
    from seo_sync.schema import TABLES

    for name in names or list(TABLES):
        spec = TABLES[name]
        world.create_table(spec.dynamo_name(prefix), spec.key_names, shards=shards)


def put(world: FakeWorld, i: int, version: int = 1, name: str = "n") -> None:
    """Put business b{i:04d} at `version` into the fake world."""
    from seo_sync import codec

    world.put("seo_businesses", codec.item_from_python({"business_id": f"b{i:04d}", "name": name,
                                                        "_version": version}))


if TYPE_CHECKING:
    # Declared against the interface of the real client it stands in for: mypy fails here when the
    # fake drifts from what StreamReader calls (the fake is in mypy's files).
    _fake_streams_client: StreamsApi = FakeStreamsClient(FakeWorld())
    _fake_dynamodb_client: DynamoDBApi = FakeDynamoDBClient(FakeWorld())
