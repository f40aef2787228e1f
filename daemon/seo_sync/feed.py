"""The change feed's vocabulary: the `ChangeFeed` protocol, the values it answers with, and a position in it.

A feed is a set of shards with lineage (a parent is read to its end before its children), positions
in each shard (iterators), and pages of records in the DynamoDB Streams record shape
(`eventName`, `dynamodb.Keys`, `NewImage`, `OldImage`, `SequenceNumber`,
`ApproximateCreationDateTime`). Everything after it (shards and cursors, apply, checkpoints in the
same transaction, gap detection, full sync with capture before copy, status) is written against
this protocol only.

This module sits in the foundation layer, below both sides: `aws/` implements the protocol and
answers with these plain values (so modules that only read them need neither boto3 nor the code that
talks to it), `sync/` reads the feed through the protocol, and `cache/` stores a `Checkpoint` (where
one shard has been read to) in the transaction of the rows it produced.

DynamoDB Streams implements it in `aws/streams.py` (`StreamReader`); the tests' fake streams world
is the same class over a scripted client. A second source (Kinesis Data Streams for DynamoDB, for
fleets of more than two hosts) is a second implementation, `aws/kinesis.py`'s `KinesisFeed` (and
`aws/kinesis_efo.py`'s `EfoFeed` for enhanced fan-out). All three are declared against the
protocol in `aws/kinesis_source.py`, so mypy checks each of them, whichever a `Source` holds.

`status` is the feed's own part of the status snapshot, so the engine asks every feed the same way
instead of probing for an optional method.

`per_item_order` says whether the records of one shard hold each item's changes in the order they
happened (DynamoDB Streams: yes). Kinesis's do not (they may be reordered and repeated): every
batch carries the flag, and the apply path orders such a batch by (`_version`, creation time) per
key instead of by position. For such a feed a full sync also positions the capture in time
(AT_TIMESTAMP, before the Scan began) and reads it until records arrive after the Scan ended
plus `max_lateness`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# Where a position starts in a shard. The two sequence-number kinds take the sequence number, and
# AT_TIMESTAMP a moment in epoch seconds; DynamoDB Streams offers every kind but AT_TIMESTAMP.
StartKind = Literal["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP"]


@dataclass
class TableInfo:
    """What DescribeTable says about one table."""

    name: str
    status: str
    stream_arn: str | None
    stream_enabled: bool
    view_type: str | None
    item_count: int


@dataclass
class ShardInfo:
    """One shard of a stream: its id, parent, and sequence range (end absent while open).

    A Kinesis shard made by a merge has a second parent (the adjacent one); both are read to their
    ends before it. DynamoDB Streams shards never have one.
    """

    shard_id: str
    parent_shard_id: str | None
    starting_seq: str | None
    ending_seq: str | None
    adjacent_parent_shard_id: str | None = None

    @property
    def closed(self) -> bool:
        """True once the shard has an ending sequence number (no new records will arrive)."""
        return self.ending_seq is not None


@dataclass
class StreamInfo:
    """DescribeStream, all pages."""

    arn: str
    status: str
    view_type: str | None
    shards: list[ShardInfo] = field(default_factory=list)


@dataclass
class RecordsPage:
    """One GetRecords answer."""

    records: list[dict[str, Any]]
    next_iterator: str | None
    # How far the page's end lies behind the shard's newest record, when the feed says (Kinesis's
    # MillisBehindLatest): 0 means the shard was read to its tip. None: not known.
    behind_ms: int | None = None
    age: float = 0.0  # seconds since the page was read from the stream (one served again from memory)
    # The sequence number the page was read to, other tables' records of a shared stream included:
    # nothing of this table lies between its own last record and it, so it may resume after it.
    read_to: str | None = None


@dataclass
class Checkpoint:
    """Where one shard has been read to, committed with the rows it produced."""

    table: str
    stream_arn: str
    shard_id: str
    parent_shard_id: str | None = None
    sequence_number: str | None = None  # last applied; None = "at LATEST as of latest_as_of"
    closed: bool = False  # read to its end
    latest_as_of: float | None = None
    updated_at: float = field(default_factory=time.time)


class ChangeFeed(Protocol):
    """Shards with lineage, positions in them, and pages of change records; calls are counted."""

    get_records_calls: int
    describe_stream_calls: int
    per_item_order: bool
    # The longest a record may arrive after the change it records, in seconds (0: records arrive in
    # order, so a shard read to a record created after a moment holds every change before it).
    max_lateness: float

    def describe_stream(self, arn: str, table: str | None = None) -> StreamInfo:
        """Every shard of the feed with its parent and sequence range (all pages)."""

    def shard_iterator(self, arn: str, shard_id: str, kind: StartKind, seq: str | None = None,
                       table: str | None = None, at: float | None = None) -> str:
        """A position in one shard: TRIM_HORIZON, LATEST, AT_/AFTER_SEQUENCE_NUMBER with the sequence
        number `seq`, or AT_TIMESTAMP with `at` in epoch seconds (BadInput from a feed without it)."""

    def get_records(self, iterator: str, limit: int = 1000, table: str | None = None) -> RecordsPage:
        """One page of records from a position, and the next position (None at a closed shard's end)."""

    def wait_pushed(self, arn: str, seen: dict[str, int], timeout: float, stop: threading.Event) -> dict[str, int]:
        """Wait up to `timeout` seconds, less when a feed that pushes (Kinesis enhanced fan-out)
        receives records for stream `arn` past `seen` (shard id -> events received, as returned
        last time), or when `stop` is set; the counts now. A polled feed just waits (and returns {})."""

    def status(self) -> dict[str, Any]:
        """What `seo-sync status` shows of the feed under "feed", JSON-able: at least `kind` (which
        source: "dynamodb-streams", "kinesis") and `get_records_calls`; a feed adds what an operator needs
        of it (Kinesis: its mode and per shard calls and lag). The metrics endpoint reads `shards`,
        `pages_shared` and `renewals` from it where present (`service/metrics.py`)."""
