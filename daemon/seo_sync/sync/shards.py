"""The shard graph of one table's stream and a read cursor per shard.

Shared by `tailer.py` (live tailing) and `fullsync.py` (capture during a scan), which must not import
each other. Single-threaded: one thread at a time owns a ShardSet.

Rules: a parent is read to its end (no NextShardIterator) before any child; a shard is finished
only when GetRecords says so AND DescribeStream shows its end (an EndingSequenceNumber, or a child):
an answer alone could be a fault of the network, and a shard taken for finished is never read
again; a shard recorded finished that DescribeStream still lists open is read again; a
child found later is read from TRIM_HORIZON; a cursor resumes AFTER_SEQUENCE_NUMBER its last
sequence number, never LATEST, and a shard whose LATEST chain (no record yet) is lost is a gap;
throttling backs off per shard with jitter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from seo_sync.backoff import backoff_delay
from seo_sync.config import StreamSettings
from seo_sync.errors import (
    BadInput,
    IteratorExpired,
    SourceError,
    SourceThrottled,
    SourceUnavailable,
    StreamGone,
    TableMissing,
)
from seo_sync.feed import ChangeFeed, Checkpoint, RecordsPage, StreamInfo, TableInfo

log = structlog.get_logger()
BACKOFF_BASE = 0.5
UNREAD_SAFETY = 0.9  # a shard unread for this share of the retention may already be trimmed
# After a shard last delivered records it stays "active" this long: an empty poll is then followed by
# the next one at the fast rate, not after the idle interval. Under sustained writes most polls come
# back empty between two writes, and waiting the idle interval after each would add up to a second
# to the lag; a shard quiet for this long falls back to the idle interval (the idle cost).
ACTIVE_WINDOW = 5.0
DESCRIBE_INTERVAL_CHILDREN = 1.0  # seconds between DescribeStream calls while children are awaited
IDLE_TOUCH_SECONDS = 600.0  # refresh an idle shard's checkpoint time this often (age-based gap check)


# Where a cursor without an iterator takes one: AFTER its seq, TRIM_HORIZON, LATEST, AT_TIMESTAMP its
# start_time, or nowhere (LOST: a checkpoint of a LATEST position that delivered no record, a gap).
CursorStart = Literal["AFTER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "LOST"]


@dataclass
class Cursor:
    """Where one shard is being read."""

    shard_id: str
    parent_id: str | None
    seq: str | None = None  # last sequence number read (and handed on to be applied)
    # LATEST and AT_TIMESTAMP only when positions are taken, LOST only from a checkpoint.
    start: CursorStart = "AFTER"
    iterator: str | None = None
    closed: bool = False  # DescribeStream gave it an ending sequence number
    finished: bool = False  # read to its end
    latest_as_of: float | None = None
    finished_at: float | None = None  # clock() when this process read it to its end
    # A seq-less TRIM_HORIZON position is complete as of this wall time (listed, or last polled empty):
    # resuming it is safe only while nothing written since could have been trimmed.
    confirmed_at: float | None = None
    next_due: float = 0.0
    failures: int = 0
    records_read: int = 0
    last_handed: float = field(default_factory=time.monotonic)
    last_records_at: float = float("-inf")  # clock() of the last poll that brought records
    adjacent_parent_id: str | None = None  # a merged Kinesis shard's second parent
    start_time: float | None = None  # epoch seconds of an AT_TIMESTAMP position
    last_polled: float | None = None  # clock() of the last GetRecords asked (answered or not)

    def checkpoint(self, table: str, arn: str, now: float) -> Checkpoint:
        """This cursor as a checkpoint row written at wall-clock time `now`.

        A seq-less TRIM_HORIZON cursor is written with latest_as_of None and updated_at = the time its
        position was last confirmed, so a restart can tell how old it is.
        """
        if self.seq is None and self.start == "TRIM_HORIZON" and not self.finished:
            return Checkpoint(table, arn, self.shard_id, self.parent_id, None, False, None,
                              self.confirmed_at if self.confirmed_at is not None else now)
        return Checkpoint(table, arn, self.shard_id, self.parent_id, self.seq, self.finished,
                          self.latest_as_of if self.seq is None else None, now)


@dataclass
class Page:
    """What one poll of one shard produced."""

    shard_id: str
    records: list[dict[str, Any]]
    checkpoint: Checkpoint
    finished_now: bool = False
    behind_ms: int | None = None  # as the feed said (0: read to the shard's tip; None: not known)
    age: float = 0.0  # seconds since the feed read the page from the stream (it may serve one again)


class ShardSet:
    """The cursors of one stream; polls shards in lineage order."""

    def __init__(self, feed: ChangeFeed, table: str, arn: str, settings: StreamSettings, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.feed = feed
        self.table = table
        self.arn = arn
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.rng = rng
        self.cursors: dict[str, Cursor] = {}
        self.last_describe = -1e18
        self.new_shards: list[str] = []  # listed since the caller last took this list
        self.reopened = 0  # shards recorded finished that DescribeStream still listed open

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def from_checkpoints(cls, feed: ChangeFeed, table: str, arn: str, settings: StreamSettings,
                         checkpoints: Iterable[Checkpoint], **kw: Any) -> ShardSet:
        """Resume from committed checkpoints: after a sequence number, finished, or a child shard not yet
        read (TRIM_HORIZON, confirmed as of its updated_at). A LATEST position without a record is lost."""
        ss = cls(feed, table, arn, settings, **kw)
        for cp in checkpoints:
            start: CursorStart = ("AFTER" if cp.sequence_number else
                                  "TRIM_HORIZON" if not cp.closed and cp.latest_as_of is None else "LOST")
            ss.cursors[cp.shard_id] = Cursor(cp.shard_id, cp.parent_shard_id, cp.sequence_number, start,
                                             closed=cp.closed, finished=cp.closed, latest_as_of=cp.latest_as_of,
                                             confirmed_at=cp.updated_at if start == "TRIM_HORIZON" else None)
        return ss

    def take_positions(self, checkpoints: Iterable[Checkpoint], at_time: float | None = None) -> None:
        """Full sync: a position for every open shard now (its checkpoint if readable, else LATEST, or
        AT_TIMESTAMP `at_time` when given: a feed whose records may arrive late and out of order
        must also capture what arrives after the Scan began but happened a little before).

        Shards already closed are done: the Scan that follows reflects them.
        """
        by_id = {cp.shard_id: cp for cp in checkpoints if cp.stream_arn == self.arn}
        info = self.describe()
        now_wall = self.wall()
        for s in info.shards:
            c = Cursor(s.shard_id, s.parent_shard_id, closed=s.closed, adjacent_parent_id=s.adjacent_parent_shard_id)
            cp = by_id.get(s.shard_id)
            if s.closed:
                c.finished = True
                c.seq = cp.sequence_number if cp else None
            else:
                c.iterator = None
                if cp is not None and cp.sequence_number and not cp.closed:
                    c.seq, c.start = cp.sequence_number, "AFTER"
                    try:
                        c.iterator = self._acquire(c)
                    except StreamGone:
                        c.seq = None
                if c.iterator is None:
                    c.seq, c.latest_as_of = None, now_wall
                    c.start, c.start_time = ("LATEST", None) if at_time is None else ("AT_TIMESTAMP", at_time)
                    c.iterator = self._acquire(c)
            self.cursors[c.shard_id] = c

    # -- the graph ------------------------------------------------------------------------------

    def describe(self) -> StreamInfo:
        """DescribeStream (all pages)."""
        self.last_describe = self.clock()
        try:
            return self.feed.describe_stream(self.arn, self.table)
        except TableMissing as e:
            raise StreamGone(f"stream {self.arn} no longer exists ({e.message})",
                             hint="the table was re-created or its stream re-enabled; a full sync repairs it") from None

    def refresh(self, info: StreamInfo | None = None) -> list[str]:
        """Reconcile with DescribeStream: add new shards, raise StreamGone if a shard in hand vanished.

        Returns the ids of finished shards that are gone (their checkpoints can be dropped).
        """
        info = info or self.describe()
        present = {s.shard_id: s for s in info.shards}
        parents = {p for s in info.shards for p in (s.parent_shard_id, s.adjacent_parent_shard_id) if p}
        gone = []
        for sid, c in list(self.cursors.items()):
            if sid in present:
                if c.finished and not present[sid].closed and sid not in parents:
                    self._reopen(c)
                c.closed = c.closed or present[sid].closed
                # Checkpoints hold one parent: a merged shard's second one comes from the listing.
                c.adjacent_parent_id = c.adjacent_parent_id or present[sid].adjacent_parent_shard_id
                continue
            if not c.finished:
                raise StreamGone(f"checkpointed shard {sid} no longer exists in the stream",
                                 hint="records were trimmed while it was unread; a full sync repairs it")
            gone.append(sid)
            del self.cursors[sid]
        for s in info.shards:
            if s.shard_id not in self.cursors:
                # Appeared after our positions were taken: read it all, after its parent's end.
                self.cursors[s.shard_id] = Cursor(s.shard_id, s.parent_shard_id, start="TRIM_HORIZON",
                                                  closed=s.closed, confirmed_at=self._listed_at(s.parent_shard_id),
                                                  adjacent_parent_id=s.adjacent_parent_shard_id)
                self.new_shards.append(s.shard_id)
                log.info("shard_discovered", table=self.table, shard=s.shard_id, parent=s.parent_shard_id)
        return gone

    def _reopen(self, c: Cursor) -> None:
        """A shard recorded finished that DynamoDB lists open (no end, no child): read it again after
        its last sequence number (it was never finished: what said so was a fault)."""
        log.warning("shard_reopened", table=self.table, shard=c.shard_id, seq=c.seq)
        c.finished = c.closed = False
        c.finished_at, c.iterator, c.next_due = None, None, 0.0
        if c.seq is None and c.start != "AT_TIMESTAMP":
            c.start, c.confirmed_at = "TRIM_HORIZON", c.confirmed_at or self.wall()
        c.start = "AFTER" if c.seq is not None else c.start
        self.reopened += 1

    def end_confirmed(self, c: Cursor) -> bool:
        """True when DescribeStream shows `c` ended (its EndingSequenceNumber, or a child listed); False
        also when it cannot be asked now (the page read is handed on all the same)."""
        try:
            shards = [] if c.closed else self.describe().shards
        except (SourceThrottled, SourceUnavailable) as e:
            log.warning("shard_end_unchecked", table=self.table, shard=c.shard_id, error=str(e.message)[:160])
            return False
        c.closed = c.closed or any((s.shard_id == c.shard_id and s.closed)
                                   or c.shard_id in (s.parent_shard_id, s.adjacent_parent_shard_id) for s in shards)
        return c.closed

    def _listed_at(self, parent_id: str | None) -> float:
        """When a newly listed shard's records start: no later than its finished parent's last confirmation."""
        now = self.wall()
        parent = self.cursors.get(parent_id or "")
        if parent is not None and parent.finished and parent.confirmed_at is not None:
            return min(now, parent.confirmed_at)
        return now

    def blocked(self, c: Cursor) -> bool:
        """True while the shard's parent (either parent, after a merge) is still being read."""
        for pid in (c.parent_id, c.adjacent_parent_id):
            parent = self.cursors.get(pid or "")
            if parent is not None and not parent.finished:
                return True
        return False

    def readable(self) -> list[Cursor]:
        """Cursors that may be polled now (not finished, parent done)."""
        return [c for c in self.cursors.values() if not c.finished and not self.blocked(c)]

    def due(self, now: float | None = None) -> list[Cursor]:
        """Readable cursors whose next poll time has come."""
        now = self.clock() if now is None else now
        return [c for c in self.readable() if c.next_due <= now]

    def next_wake(self) -> float:
        """The earliest next poll time of a readable cursor (inf when none)."""
        return min((c.next_due for c in self.readable()), default=float("inf"))

    def describe_interval(self) -> float:
        """How long the shard list may go unread: short while a finished parent's children are not
        listed yet (they can be listed late, and nothing is read until they are), else the setting."""
        return DESCRIBE_INTERVAL_CHILDREN if self.waiting_for_children() else self.settings.describe_interval

    def describe_due(self, now: float) -> bool:
        """True when the shard list should be read again (the one re-describe policy of tail and capture)."""
        return now - self.last_describe >= self.describe_interval()

    def next_event(self) -> float:
        """Clock time of the next due poll or describe."""
        return min(self.next_wake(), self.last_describe + self.describe_interval())

    def waiting_for_children(self, window: float = 300.0) -> bool:
        """True when a shard finished lately has no child listed yet (children can be listed late)."""
        parents = {c.parent_id for c in self.cursors.values()}
        now = self.clock()
        return any(c.finished_at is not None and now - c.finished_at < window and c.shard_id not in parents
                   for c in self.cursors.values())

    def checkpoints(self) -> list[Checkpoint]:
        """Every cursor as a checkpoint."""
        return [c.checkpoint(self.table, self.arn, self.wall()) for c in self.cursors.values()]

    def min_seq_ok(self) -> bool:
        """True when every unfinished cursor can resume after a restart (has a sequence number)."""
        return all(c.finished or c.seq is not None for c in self.cursors.values())

    # -- reading ----------------------------------------------------------------------------------

    def _acquire(self, c: Cursor) -> str:
        if c.seq is not None:
            return self.feed.shard_iterator(self.arn, c.shard_id, "AFTER_SEQUENCE_NUMBER", c.seq, self.table)
        if c.start == "TRIM_HORIZON" and c.confirmed_at is not None:
            # Unread for longer than the stream keeps records: TRIM_HORIZON would skip what was trimmed.
            unread = self.wall() - c.confirmed_at
            if unread > UNREAD_SAFETY * self.settings.checkpoint_max_age_hours * 3600:
                raise StreamGone(f"shard {c.shard_id} was listed {unread / 3600:.1f} h ago and never read",
                                 hint="its oldest records may be trimmed; a full sync repairs it")
        if c.start == "TRIM_HORIZON" or c.start == "LATEST":
            return self.feed.shard_iterator(self.arn, c.shard_id, c.start, None, self.table)
        if c.start == "AT_TIMESTAMP" and c.start_time is not None:
            return self.feed.shard_iterator(self.arn, c.shard_id, c.start, None, self.table, at=c.start_time)
        raise StreamGone(f"shard {c.shard_id} lost its LATEST position before delivering a record",
                         hint="a full sync takes new positions")

    def poll(self, c: Cursor, now: float | None = None) -> Page | None:
        """One GetRecords on `c`; None when throttled (backing off) or the iterator was renewed."""
        now = self.clock() if now is None else now
        c.last_polled = now
        page = self._read(c, now)
        if page is None:
            return None
        if c.failures:
            log.info("stream_recovered", table=self.table, shard=c.shard_id, after_attempts=c.failures)
            c.failures = 0
        records = page.records
        c.confirmed_at = self.wall()  # read to here: nothing before this moment can still be unread
        if records:
            c.seq = str(records[-1].get("dynamodb", {}).get("SequenceNumber", c.seq))
            c.start = "AFTER"
            c.latest_as_of = None
            c.records_read += len(records)
            c.last_records_at = now
        if page.read_to is not None:
            # Read past other tables' records of a shared stream: nothing of this table is before it.
            c.seq, c.start, c.latest_as_of = page.read_to, "AFTER", None
        c.iterator = page.next_iterator
        finished_now = page.next_iterator is None
        if finished_now and not self.end_confirmed(c):
            # GetRecords alone said "end" of a shard DynamoDB lists open: a fault, not an end.
            if c.seq is None and c.start == "LATEST":
                raise StreamGone(f"shard {c.shard_id} lost its LATEST position to an answer without an iterator",
                                 hint="a full sync takes new positions")
            self._back_off(c, now, "shard_end_unconfirmed", seq=c.seq)
            return Page(c.shard_id, records, c.checkpoint(self.table, self.arn, self.wall()), False, None, page.age)
        if finished_now:
            c.finished = c.closed = True
            c.finished_at = now
            log.info("shard_finished", table=self.table, shard=c.shard_id, seq=c.seq)
        if records or c.closed or now - c.last_records_at < ACTIVE_WINDOW:
            c.next_due = now + 1.0 / self.settings.max_polls_per_second
        else:
            c.next_due = now + self.settings.idle_poll_interval
        return Page(c.shard_id, records, c.checkpoint(self.table, self.arn, self.wall()), finished_now,
                    page.behind_ms, page.age)

    def _read(self, c: Cursor, now: float) -> RecordsPage | None:
        """The feed's answer for `c` (taking an iterator first if it has none); None when the call
        failed in a way the next turn mends: an expired iterator, throttling, an outage."""
        try:
            if c.iterator is None:
                c.iterator = self._acquire(c)
                if c.start == "LATEST" and c.latest_as_of is None:
                    c.latest_as_of = self.wall()
            return self.feed.get_records(c.iterator, self.settings.get_records_limit, self.table)
        except IteratorExpired:
            c.iterator = None
            if c.seq is None and c.start != "AT_TIMESTAMP":
                # No sequence number to resume after: LATEST would skip records, and TRIM_HORIZON
                # might silently skip records trimmed while the iterator sat expired.
                raise StreamGone(f"iterator of shard {c.shard_id} expired at {c.start} before any record",
                                 hint="a full sync takes new positions") from None
            # Resumed after its sequence number, or a position in time taken again where it was.
            log.info("iterator_expired", table=self.table, shard=c.shard_id, after=c.seq, at=c.start_time)
            c.next_due = now
            return None
        except TableMissing:
            raise StreamGone(f"shard {c.shard_id} of {self.arn} no longer exists") from None
        except BadInput as e:
            # The stream rejected our position (e.g. a sequence number from a re-created table).
            raise StreamGone(f"shard {c.shard_id}: position rejected ({e.message[:160]})") from None
        except (SourceThrottled, SourceUnavailable) as e:
            self._back_off(c, now, "stream_backoff", attempt=c.failures + 1, error=str(e.message)[:160])
            return None

    def _back_off(self, c: Cursor, now: float, event: str, **fields: object) -> None:
        """Count a failed turn of `c` and put its next one off, exponentially with jitter; logged as `event`."""
        c.failures += 1
        delay = backoff_delay(c.failures, base=BACKOFF_BASE, cap=self.settings.max_backoff, rng=self.rng)
        c.next_due = now + delay
        log.warning(event, table=self.table, shard=c.shard_id, delay=round(delay, 3), **fields)


GOOD_VIEW_TYPES = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")


def check_stream(info: TableInfo) -> str:
    """The table's stream ARN; SourceError with a clear message if it is off or has the wrong view type."""
    if not info.stream_enabled or not info.stream_arn:
        raise SourceError(f"{info.name}: DynamoDB Streams is not enabled on the table",
                          hint="enable a NEW_AND_OLD_IMAGES stream (seo-sync create-tables does)")
    if info.view_type not in GOOD_VIEW_TYPES:
        raise SourceError(f"{info.name}: stream view type {info.view_type} carries no new image",
                          hint="re-create the stream with StreamViewType NEW_AND_OLD_IMAGES")
    return info.stream_arn
