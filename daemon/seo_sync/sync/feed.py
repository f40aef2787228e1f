"""The change feed: what the sync engine needs from a source of item changes.

A feed is a set of shards with lineage (a parent is read to its end before its children), positions
in each shard (iterators), and pages of records in the DynamoDB Streams record shape
(`eventName`, `dynamodb.Keys`, `NewImage`, `OldImage`, `SequenceNumber`,
`ApproximateCreationDateTime`). Everything after it (shards and cursors, apply, checkpoints in the
same transaction, gap detection, full sync with capture before copy, status) is written against
this protocol only.

DynamoDB Streams implements it in `aws/streams.py` (`StreamReader`); the tests' fake streams world
is the same class over a scripted client. A second source (Kinesis Data Streams for DynamoDB, for
fleets of more than two hosts) is a second implementation, `aws/kinesis.py`'s `KinesisFeed`.

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
from typing import Any, Protocol

from seo_sync.aws.shapes import RecordsPage, StreamInfo


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

    def shard_iterator(self, arn: str, shard_id: str, kind: str, seq: str | None = None,
                       table: str | None = None) -> str:
        """A position in one shard: TRIM_HORIZON, LATEST, or AT_/AFTER_SEQUENCE_NUMBER with `seq`
        (a feed that offers AT_TIMESTAMP takes epoch seconds in `seq`)."""

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
