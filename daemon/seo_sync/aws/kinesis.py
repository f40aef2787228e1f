"""Kinesis Data Streams for DynamoDB, polled: the second implementation of the change feed.

`KinesisFeed` is what `seo_sync/feed.py`'s `ChangeFeed` asks for, over any client shaped like
`KinesisApi` (boto3's `kinesis` client, or the fake in the tests that follows AWS where moto does
not). The shard graph comes from ListShards (paged; a shard made by a merge names both parents and
waits for both), positions are TRIM_HORIZON, LATEST, AT_TIMESTAMP or AFTER_SEQUENCE_NUMBER, and a
closed shard ends with no NextShardIterator (AWS also names its ChildShards, which the next listing
shows too). Each record is unwrapped into the DynamoDB Streams record shape (`kinesis_records.py`).

Kinesis gives every reader of a shard together 5 GetRecords calls a second, so a fleet of hosts
must each stay far below it. One host makes at most one call a shard per `min_interval`: a poll
that comes sooner is answered from memory or, when memory has nothing for it, with an empty page
that leaves the position where it was (the caller polls again later; nobody waits). When several
tables share one stream (records told apart by `tableName`), a page fetched for one table is
served to the others: a page covers a contiguous range of sequence numbers, so a table positioned
anywhere inside it gets the rest of it. For the same reason a LATEST position is taken, when the
shard was read to its tip a moment ago, as "after the last record read there": never later than
LATEST (at most a few records are read twice, which the apply path takes in its stride), and the
same position for every table, so they share from their first page. The one call goes to the
position that has waited longest, read from the earliest sequence number waiting at or before it:
otherwise positions no shared page can serve (a capture's position in time) would take every call
while a table at the tip waited.

Records of this feed have no per-item order (AWS: they "might appear in a different sequence than
the item changes occurred" and "might also appear more than once"): `per_item_order` is False.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from seo_sync.aws.kinesis_records import unwrap
from seo_sync.aws.session import CAUGHT, ErrorContext
from seo_sync.aws.streams import member
from seo_sync.errors import BadInput, IteratorExpired, SourceThrottled
from seo_sync.feed import RecordsPage, ShardInfo, StartKind, StreamInfo
from seo_sync.schema import TABLES

log = structlog.get_logger()
LIST_SHARDS_PAGE = 1000
TIP_FRESH = 10.0  # seconds a shard's tip, as last read, stands in for LATEST
POSITION_TAG = "kds1"  # marks a position string made by this feed
# Kinesis answers that mean "slow down and retry", beyond the codes DynamoDB shares with it.
KINESIS_THROTTLE_CODES = {"KMSThrottlingException", "ExpiredNextTokenException"}
# Kinesis's answer to a position it does not accept (a sequence number of another shard or stream).
KINESIS_BAD_POSITION_CODES = {"InvalidArgumentException"}


class KinesisApi(Protocol):
    """The polling calls seo-sync makes on boto3's `kinesis` client, in its keyword form."""

    def list_shards(self, *, StreamARN: str = ..., NextToken: str = ..., MaxResults: int = ...) -> Any:
        """ListShards: one page of shards (with NextToken alone for the pages after the first)."""

    def get_shard_iterator(self, *, StreamARN: str, ShardId: str, ShardIteratorType: str,
                           StartingSequenceNumber: str = ..., Timestamp: datetime = ...) -> Any:
        """GetShardIterator."""

    def get_records(self, *, ShardIterator: str, Limit: int = ..., StreamARN: str = ...) -> Any:
        """GetRecords: records, the next iterator (null at a closed shard's end), ChildShards at the end."""


@dataclass
class FetchedPage:
    """One real GetRecords answer for a shard, kept a moment for the other tables of a shared stream."""

    start_key: str  # the position it was read from
    start_seq: int | None  # the sequence number it was read after (None: a first position)
    records: list[tuple[str | None, dict[str, Any]]]  # (tableName, record in DynamoDB Streams shape)
    end_seq: int | None  # the last record's sequence number (None: empty page)
    next_iterator: str | None
    fetched_at: float
    behind_ms: int | None = None


def make_position(arn: str, shard_id: str, key: str, iterator: str) -> str:
    return "|".join((POSITION_TAG, arn, shard_id, key, iterator))


def parse_position(token: str) -> tuple[str, str, str, str]:
    parts = token.split("|", 4)
    if len(parts) != 5 or parts[0] != POSITION_TAG:
        raise BadInput("not a Kinesis position of this feed", hint="take a new shard iterator")
    return parts[1], parts[2], parts[3], parts[4]


def after_seq(key: str) -> int | None:
    return int(key[6:]) if key.startswith("after:") else None


class KinesisFeed:
    """Kinesis Data Streams through a boto3-shaped client: the change feed, errors translated, calls counted."""

    per_item_order = False

    def __init__(self, client: KinesisApi, context: ErrorContext, prefix: str, *, min_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, max_lateness: float = 2.0) -> None:
        self.client = client
        self.max_lateness = max_lateness
        self.ctx = context
        self.prefix = prefix
        self.min_interval = min_interval
        self.clock = clock
        self.get_records_calls = 0
        self.describe_stream_calls = 0
        self.pages_shared = 0  # pages served from memory to a second table of a shared stream
        self.shards: dict[str, dict[str, Any]] = {}  # shard id -> what status shows (behind-latest ms, calls)
        self._lock = threading.Lock()
        self._shard_locks: dict[tuple[str, str], threading.Lock] = {}
        self._last_call: dict[tuple[str, str], float] = {}
        self._pages: dict[tuple[str, str], list[FetchedPage]] = {}
        self._tips: dict[tuple[str, str], tuple[int, float]] = {}  # last sequence number at the tip, and when
        # Positions that asked and got nothing yet: their iterators, since when they wait, when they last asked.
        self._waiting: dict[tuple[str, str], dict[str, tuple[str, float, float]]] = {}

    # -- errors ---------------------------------------------------------------------------------

    def _translate(self, e: Exception, what: str, table: str | None) -> Exception:
        code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code", "")
        where = f"{what} on the Kinesis stream of {table or 'the tables'} at {self.ctx.region}"
        if code in KINESIS_THROTTLE_CODES:
            return SourceThrottled(f"{where}: {code}", hint="backing off and retrying")
        if code in KINESIS_BAD_POSITION_CODES:
            return BadInput(f"{where}: position refused ({str(e)[:160]})",
                            hint="the checkpoint names a position this stream does not have; a full sync repairs it")
        return self.ctx.translate(e, what, table)

    # -- the shard graph ------------------------------------------------------------------------

    def describe_stream(self, arn: str, table: str | None = None) -> StreamInfo:
        """Every shard of the stream with its parents and sequence range, paging ListShards."""
        shards: list[ShardInfo] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"MaxResults": LIST_SHARDS_PAGE}
            if token:
                kwargs["NextToken"] = token  # AWS refuses the stream name or ARN beside a NextToken
            else:
                kwargs["StreamARN"] = arn
            try:
                self.describe_stream_calls += 1
                resp = self.client.list_shards(**kwargs)
            except CAUGHT as e:
                raise self._translate(e, "ListShards", table) from None
            for s in resp.get("Shards", []):
                rng = s.get("SequenceNumberRange", {})
                shards.append(ShardInfo(s["ShardId"], s.get("ParentShardId"), rng.get("StartingSequenceNumber"),
                                        rng.get("EndingSequenceNumber"), s.get("AdjacentParentShardId")))
            token = resp.get("NextToken")
            if not token:
                return StreamInfo(arn, "ENABLED", "NEW_AND_OLD_IMAGES", shards)

    # -- positions ------------------------------------------------------------------------------

    def shard_iterator(self, arn: str, shard_id: str, kind: StartKind, seq: str | None = None,
                       table: str | None = None, at: float | None = None) -> str:
        """A position: TRIM_HORIZON, LATEST, AT_/AFTER_SEQUENCE_NUMBER with the sequence number `seq`,
        or AT_TIMESTAMP with `at` in epoch seconds."""
        kwargs: dict[str, Any] = {"StreamARN": arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if kind == "AT_TIMESTAMP":
            if at is None:
                raise BadInput("AT_TIMESTAMP needs a time", hint="pass epoch seconds as `at`")
            kwargs["Timestamp"] = datetime.fromtimestamp(at, UTC)
            key = f"at:{at!r}:{self.clock()}"
        elif seq is not None:
            kwargs["StartingSequenceNumber"] = seq
            key = f"after:{seq}" if kind == "AFTER_SEQUENCE_NUMBER" else f"at:{seq}"
        elif kind == "LATEST" and self._fresh_tip(arn, shard_id) is not None:
            tip = str(self._fresh_tip(arn, shard_id))
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=tip)
            key = f"after:{tip}"
        else:
            key = f"{kind}:{self.clock()}"  # never shared: another table's LATEST is another position
        try:
            iterator = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
        except CAUGHT as e:
            raise self._translate(e, "GetShardIterator", table) from None
        return make_position(arn, shard_id, key, iterator)

    # -- records --------------------------------------------------------------------------------

    def get_records(self, iterator: str, limit: int = 1000, table: str | None = None) -> RecordsPage:
        """One page of `table`'s records from a position, and the next position (None at a closed shard's end)."""
        arn, shard_id, key, real = parse_position(iterator)
        with self._shard_lock(arn, shard_id):
            page, start = self._shared_page(arn, shard_id, key)
            if page is not None:
                self.pages_shared += 1
            elif self.clock() - self._last_call.get((arn, shard_id), -1e18) < self.min_interval:
                self._wait(arn, shard_id, key, real)
                return RecordsPage([], iterator)  # too soon for this shard: the same position, asked again later
            else:
                from_key, from_real = self._next_call(arn, shard_id, key, real)
                try:
                    fetched = self._fetch(arn, shard_id, from_key, from_real, limit, table)
                except (IteratorExpired, BadInput):
                    if from_key == key:
                        raise
                    # Another table's position failed: that table meets the error when it asks itself.
                    self._wait(arn, shard_id, key, real)
                    return RecordsPage([], iterator)
                page, start = (fetched, 0) if from_key == key else self._shared_page(arn, shard_id, key)
                if page is None:  # the call served a position this page does not reach: the next one may
                    self._wait(arn, shard_id, key, real)
                    return RecordsPage([], iterator)
            self._waiting.get((arn, shard_id), {}).pop(key, None)
        records = page.records[start:]
        want = None if table is None else (TABLES[table].dynamo_name(self.prefix) if table in TABLES else table)
        mine = [r for name, r in records if want is None or name is None or name == want]
        read_to = str(page.end_seq) if page.end_seq is not None and records else None
        age = max(0.0, self.clock() - page.fetched_at)
        if page.next_iterator is None:
            return RecordsPage(mine, None, page.behind_ms, age=age, read_to=read_to)
        next_key = f"after:{page.end_seq}" if page.end_seq is not None else key
        return RecordsPage(mine, make_position(arn, shard_id, next_key, page.next_iterator), page.behind_ms,
                           age=age, read_to=read_to)

    def _fresh_tip(self, arn: str, shard_id: str) -> int | None:
        """The shard's last sequence number if it was read to its tip lately (None otherwise)."""
        with self._lock:
            tip = self._tips.get((arn, shard_id))
        return tip[0] if tip is not None and self.clock() - tip[1] <= TIP_FRESH else None

    def _shard_lock(self, arn: str, shard_id: str) -> threading.Lock:
        with self._lock:
            return self._shard_locks.setdefault((arn, shard_id), threading.Lock())

    def _wait(self, arn: str, shard_id: str, key: str, real: str) -> None:
        """Note a position that asked and got nothing: since when it has waited, and when it last asked."""
        now = self.clock()
        waiting = self._waiting.setdefault((arn, shard_id), {})
        since = waiting[key][1] if key in waiting else now
        waiting[key] = (real, since, now)

    def _next_call(self, arn: str, shard_id: str, key: str, real: str) -> tuple[str, str]:
        """Where the shard's next call starts: at the position that has waited longest, the asking one
        included, so that every table's position is read in turn, however often the others ask. A
        sequence number is read from the earliest one waiting at or before it, since that page serves
        every table between them too. Positions nobody asked for lately (their table moved on) are dropped."""
        now = self.clock()
        waiting = {k: v for k, v in self._waiting.get((arn, shard_id), {}).items()
                   if now - v[2] < 2 * self.min_interval or k == key}
        self._waiting[(arn, shard_id)] = waiting
        since = {k: v[1] for k, v in waiting.items()}
        since.setdefault(key, now)
        reals = {k: v[0] for k, v in waiting.items()}
        reals[key] = real
        chosen = min(since, key=lambda k: since[k])
        seq = after_seq(chosen)
        if seq is not None:
            earlier = {k: n for k in since if (n := after_seq(k)) is not None and n <= seq}
            chosen = min(earlier, key=lambda k: earlier[k])
        waiting.pop(chosen, None)
        return chosen, reals[chosen]

    def _shared_page(self, arn: str, shard_id: str, key: str) -> tuple[FetchedPage | None, int]:
        """A page fetched a moment ago that covers `key`, and the index of the first record after it."""
        now = self.clock()
        fresh = [p for p in self._pages.get((arn, shard_id), []) if now - p.fetched_at < self.min_interval]
        self._pages[(arn, shard_id)] = fresh
        after = after_seq(key)
        for p in fresh:
            if p.start_key == key:
                return p, 0
            if after is not None and p.start_seq is not None and p.end_seq is not None \
                    and p.start_seq <= after < p.end_seq:
                skip = sum(1 for _, r in p.records if int(r["dynamodb"]["SequenceNumber"]) <= after)
                return p, skip
        return None, 0

    def _fetch(self, arn: str, shard_id: str, key: str, real: str, limit: int, table: str | None) -> FetchedPage:
        """One real GetRecords call (the caller has checked the pacing)."""
        self._last_call[(arn, shard_id)] = self.clock()
        self.get_records_calls += 1
        try:
            resp = self.client.get_records(ShardIterator=real, Limit=limit, StreamARN=arn)
        except CAUGHT as e:
            raise self._translate(e, "GetRecords", table) from None
        records = [unwrap(r) for r in member(resp, "Records", "GetRecords")]  # none: cut, never "no records"
        end = int(records[-1][1]["dynamodb"]["SequenceNumber"]) if records else None
        next_iterator = resp.get("NextShardIterator")
        page = FetchedPage(key, after_seq(key), records, end, next_iterator, self.clock(),
                           resp.get("MillisBehindLatest"))
        self._pages.setdefault((arn, shard_id), []).append(page)
        at_tip = resp.get("MillisBehindLatest") == 0 and next_iterator is not None
        last = end if end is not None else after_seq(key)
        if at_tip and last is not None:
            with self._lock:
                self._tips[(arn, shard_id)] = (last, self.clock())
        shown = self.shards.setdefault(shard_id, {"calls": 0})
        shown.update(calls=shown["calls"] + 1, behind_latest_ms=page.behind_ms)
        if next_iterator is None:
            children = [c.get("ShardId") for c in resp.get("ChildShards", [])]
            shown["children"] = children
            log.info("kinesis_shard_end", shard=shard_id, children=children)
        return page

    def wait_pushed(self, arn: str, seen: dict[str, int], timeout: float, stop: threading.Event) -> dict[str, int]:
        """Polled, nothing is pushed: wait `timeout` seconds (less when `stop` is set)."""
        stop.wait(timeout)
        return {}

    def status(self) -> dict[str, Any]:
        """What status shows of this feed: the mode, and per shard its calls and how far behind it is."""
        return {"kind": "kinesis", "mode": "polling", "get_records_calls": self.get_records_calls,
                "pages_shared": self.pages_shared, "shards": {k: dict(v) for k, v in self.shards.items()}}
