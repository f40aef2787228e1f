"""The relay: plays DynamoDB's part of Kinesis Data Streams for DynamoDB on the embedded local AWS.

moto has Kinesis streams but does not forward a table's item changes to one (its DynamoDB lacks the
Kinesis streaming destination). The relay does that job: it reads each table's DynamoDB Stream on
moto from the beginning and puts every change into a moto Kinesis stream as the JSON document
DynamoDB writes (`aws/kinesis_records.py`'s `wrap`), with creation times in microseconds. So the
real daemon runs end to end on moto with `[source] kind = "kinesis"` in polling mode.

AWS warns that KDS records may come out of order, more than once and late; `shuffle` puts each batch
in a random order, `duplicate` repeats a share of the records, and `late` holds a share back for up
to `max_delay` seconds (a throttled destination, a slow host), so the daemons see all three.

`step` is one pass; `run` repeats it on the calling thread until its stop event is set (the demo and
the tests decide which thread that is).
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import boto3
import botocore.exceptions as bexc
import structlog

from seo_sync import codec
from seo_sync.aws.kinesis_records import wrap
from seo_sync.demo.embedded import FAKE_CREDENTIALS
from seo_sync.schema import TABLES

log = structlog.get_logger()
PUT_RECORDS_MAX = 500  # records one PutRecords call takes
DESCRIBE_EVERY = 1.0  # seconds a table's stream and shard list are used before they are described again


class Relay:
    """DynamoDB Streams on moto -> one Kinesis stream on moto, for the tables of one prefix."""

    def __init__(self, endpoint: str, prefix: str, stream_name: str = "seo-changes", *, shards: int = 1,
                 shuffle: bool = False, duplicate: float = 0.0, late: float = 0.0, max_delay: float = 0.0,
                 seed: int | None = None, region: str = "us-east-1", kinesis_endpoint: str | None = None) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": region,  # moto takes any credentials
                              "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        self.ddb = boto3.client("dynamodb", **kw)
        self.streams = boto3.client("dynamodbstreams", **kw)
        # The stream may be reached another way than the tables (through a front that adds what moto lacks).
        self.kinesis = boto3.client("kinesis", **{**kw, "endpoint_url": kinesis_endpoint or endpoint})
        self.prefix = prefix
        self.region = region
        self.stream_name = stream_name
        self.shards = shards
        self.shuffle = shuffle
        self.duplicate = duplicate
        self.late = late
        self.max_delay = max_delay
        self.delayed = 0  # records held back so far
        self._held: list[tuple[float, dict[str, Any]]] = []  # (time.monotonic() to put it, entry)
        # Shuffles and repeats records of a demo; nothing here is a secret.
        self.rng = random.Random(seed)  # nosec B311
        self.stream_arn = ""
        self.relayed = 0
        self._iterators: dict[tuple[str, str], str] = {}  # (table, shard) -> next DynamoDB Streams iterator
        self._last_us = 0
        self._described: dict[str, tuple[float, str, list[str]]] = {}  # table -> (when, stream ARN, shard ids)

    def ensure_stream(self) -> str:
        """Create the Kinesis stream unless it exists; its ARN."""
        try:
            self.kinesis.create_stream(StreamName=self.stream_name, ShardCount=self.shards)
        except bexc.ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
        summary = self.kinesis.describe_stream_summary(StreamName=self.stream_name)["StreamDescriptionSummary"]
        self.stream_arn = str(summary["StreamARN"])
        return self.stream_arn

    def _created_us(self, record: dict[str, Any]) -> int:
        """The change's creation time in µs: moto's (whole seconds or ms), made strictly increasing
        in the order the relay reads each table's stream, as DynamoDB's own µs times are per item."""
        when = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
        us = int(when.timestamp() * 1_000_000) if when is not None else 0
        self._last_us = max(us, self._last_us + 1)
        return self._last_us

    def _kds_entry(self, dynamo_table: str, record: dict[str, Any]) -> dict[str, Any]:
        dyn = record["dynamodb"]
        keys = codec.item_to_ddb_json(dyn["Keys"])
        new = codec.item_to_ddb_json(dyn["NewImage"]) if "NewImage" in dyn else None
        old = codec.item_to_ddb_json(dyn["OldImage"]) if "OldImage" in dyn else None
        data = wrap(dynamo_table, record["eventName"], keys, new, old, self._created_us(record),
                    region=self.region, event_id=str(record.get("eventID", "")),
                    user_identity=record.get("userIdentity"))
        pk = dynamo_table + "|" + "|".join(str(v.get("S")) for _, v in sorted(dyn["Keys"].items()))
        return {"Data": data, "PartitionKey": pk[:256]}

    def _shards_of(self, dynamo_table: str) -> tuple[str, list[str]] | None:
        """The table's stream ARN and shard ids, described again once DESCRIBE_EVERY has passed: a pass
        then costs one GetRecords a shard, so the relay's own hop stays short beside what it relays."""
        now = time.monotonic()
        known = self._described.get(dynamo_table)
        if known is not None and now - known[0] < DESCRIBE_EVERY:
            return known[1], known[2]
        try:
            arn = self.ddb.describe_table(TableName=dynamo_table)["Table"].get("LatestStreamArn")
        except bexc.ClientError:
            return None  # not created yet
        if not arn:
            return None
        shards = [s["ShardId"] for s in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]
                  .get("Shards", [])]
        self._described[dynamo_table] = (now, arn, shards)
        return arn, shards

    def _read_table(self, dynamo_table: str) -> list[dict[str, Any]]:
        """Every record of the table's DynamoDB Stream not yet relayed, as PutRecords entries."""
        found = self._shards_of(dynamo_table)
        if found is None:
            return []
        arn, shard_ids = found
        entries: list[dict[str, Any]] = []
        for sid in shard_ids:
            it = self._iterators.get((dynamo_table, sid))
            if it is None:
                it = self.streams.get_shard_iterator(StreamArn=arn, ShardId=sid,
                                                     ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                resp = self.streams.get_records(ShardIterator=it, Limit=1000)
                entries += [self._kds_entry(dynamo_table, r) for r in resp.get("Records", [])]
                nxt = resp.get("NextShardIterator")
                if nxt:
                    self._iterators[(dynamo_table, sid)] = nxt
                if not resp.get("Records"):
                    break
                it = nxt
        return entries

    def step(self) -> int:
        """Relay every change made since the last step; how many records went into Kinesis."""
        if not self.stream_arn:
            self.ensure_stream()
        entries: list[dict[str, Any]] = []
        for spec in TABLES.values():
            entries += self._read_table(spec.dynamo_name(self.prefix))
        entries += [e for e in entries if self.rng.random() < self.duplicate]
        entries = self._hold_back(entries)
        if self.shuffle:
            self.rng.shuffle(entries)
        for i in range(0, len(entries), PUT_RECORDS_MAX):
            self.kinesis.put_records(StreamARN=self.stream_arn, Records=entries[i:i + PUT_RECORDS_MAX])
        self.relayed += len(entries)
        return len(entries)

    def _hold_back(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`entries` less the share `late` held back for a random delay up to `max_delay`, plus those
        held earlier whose delay is over."""
        now = time.monotonic()
        due = [e for at, e in self._held if at <= now]
        self._held = [(at, e) for at, e in self._held if at > now]
        out = []
        for e in entries:
            if self.late and self.rng.random() < self.late:
                self._held.append((now + self.rng.uniform(0.0, self.max_delay), e))
                self.delayed += 1
            else:
                out.append(e)
        return out + due

    def pending(self) -> int:
        """Records held back and not yet put into the stream."""
        return len(self._held)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Step until `stop` is set, on the calling thread."""
        while not stop.is_set():
            try:
                self.step()
            except (bexc.BotoCoreError, bexc.ClientError) as e:
                log.warning("relay_step_failed", error=str(e)[:200])
            stop.wait(interval)
