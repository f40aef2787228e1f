"""What the AWS adapters answer with: plain values describing tables, streams, shards and record pages.

Kept apart from them so modules that only read these values (shards, tailer, status) need
neither boto3 nor the code that talks to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
