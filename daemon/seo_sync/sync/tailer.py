"""Tailing one table's change feed: shard list refresh, gap detection, and pages turned into batches.

A `TableTailer` is stepped by that table's poller thread (`poller.py`); each `Batch` it makes (one
page of one shard, with the checkpoint it reaches) goes to the writer thread (`writer.py`), which
applies it. Gaps (a trimmed or vanished shard, a new stream ARN) raise StreamGone: the engine
answers with a full sync of that table alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from seo_sync.aws.tables import Source
from seo_sync.changes import created_at_of
from seo_sync.config import StreamSettings
from seo_sync.errors import StreamGone
from seo_sync.feed import Checkpoint
from seo_sync.schema import TableSpec
from seo_sync.sync.shards import IDLE_TOUCH_SECONDS, Cursor, ShardSet, check_stream

log = structlog.get_logger()
# An open shard with no GetRecords call for this long (beyond its longest backoff) is stalled: the
# table is unhealthy, the shard is polled at once and the graph is read again; stalled twice as
# long after that, the table is fully synced again.
STALL_SECONDS = 60.0


@dataclass
class Batch:
    """One page of one shard, handed from a poller to the writer."""

    table: str
    generation: int
    shard_id: str
    records: list[dict[str, Any]]
    checkpoint: Checkpoint
    last_created: float | None = None  # ApproximateCreationDateTime of the last record
    read_at: float = field(default_factory=time.time)
    drop_shards: list[str] = field(default_factory=list)  # finished shards gone from the stream
    # False for a feed whose records may come out of order and repeated (Kinesis): apply by
    # (_version, creation time) per key, never by position.
    ordered: bool = True


class TableTailer:
    """Polls one table's shards and produces batches; owned by one poller thread."""

    def __init__(self, source: Source, spec: TableSpec, shards: ShardSet, settings: StreamSettings,
                 generation: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.spec = spec
        self.shards = shards
        self.settings = settings
        self.generation = generation
        self.clock = clock
        self.idle = False
        self.dropped_checkpoints: list[str] = []
        self.pushes_seen: dict[str, int] = {}  # shard id -> events the feed had received when last looked
        self.stall_after = max(STALL_SECONDS, 2 * settings.max_backoff + settings.idle_poll_interval)
        self.stall_repaired: set[str] = set()  # stalled shards already polled out of turn once
        if shards.last_describe < -1e17:
            shards.last_describe = -1e18  # describe on the first step

    def check_arn(self) -> None:
        """StreamGone if the table's LatestStreamArn is no longer the stream we read."""
        info = self.source.describe_table(self.spec)
        arn = check_stream(info)
        if arn != self.shards.arn:
            raise StreamGone(f"{info.name}: stream ARN changed from {self.shards.arn} to {arn}",
                             hint="the table was re-created or its stream re-enabled; a full sync repairs it")

    def step(self, force_describe: bool = False, poll_all: bool = False) -> list[Batch]:
        """Refresh the graph when due, then poll every due shard once; StreamGone on a gap."""
        now = self.clock()
        force_describe = self._repair_stalls(now) or force_describe
        if force_describe or self.shards.describe_due(now):
            self.check_arn()
            self.dropped_checkpoints += self.shards.refresh()
        out: list[Batch] = []
        # Commit newly listed shards at once, so a restart resumes them instead of missing them.
        for sid in self.shards.new_shards:
            c = self.shards.cursors.get(sid)
            if c is not None:
                out.append(Batch(self.spec.name, self.generation, sid, [],
                                 c.checkpoint(self.spec.name, self.shards.arn, self.shards.wall())))
        self.shards.new_shards = []
        cursors = self.shards.readable() if poll_all else self.shards.due(now)
        for c in cursors:
            had_position = c.seq is not None
            page = self.shards.poll(c, now)
            if page is None:
                continue
            # A first sequence number is committed at once: a restart resumes after it instead of
            # finding a position without one, which only a full sync can replace.
            touch = now - c.last_handed >= IDLE_TOUCH_SECONDS or (c.seq is not None and not had_position)
            if page.records or page.finished_now or touch:
                c.last_handed = now
                out.append(Batch(self.spec.name, self.generation, page.shard_id, page.records, page.checkpoint,
                                 created_at_of(page.records[-1]) if page.records else None,
                                 ordered=self.shards.feed.per_item_order))
        if out and self.dropped_checkpoints:
            out[0].drop_shards, self.dropped_checkpoints = self.dropped_checkpoints, []
        self.idle = not out or all(not b.records for b in out)
        return out

    def stalled(self, now: float) -> list[Cursor]:
        """Readable cursors (open, parent done) without a GetRecords call for `stall_after` seconds.

        Safe from another thread (status): it only reads the cursors, and starts a cursor's count the
        first time it sees it readable.
        """
        out = []
        for c in list(self.shards.cursors.values()):
            if c.finished or self.shards.blocked(c):
                continue
            if c.last_polled is None:
                c.last_polled = now
            elif now - c.last_polled > self.stall_after:
                out.append(c)
        return out

    def stalled_shards(self) -> int:
        """How many open shards have had no GetRecords call for longer than `stall_after` (for status)."""
        return len(self.stalled(self.clock()))

    def _repair_stalls(self, now: float) -> bool:
        """Stalled shards are polled now (True: read the graph again); StreamGone
        when one is still stalled twice as long after that."""
        stalled = self.stalled(now)
        if not stalled:
            self.stall_repaired.clear()
            return False
        for c in stalled:
            if c.shard_id in self.stall_repaired and now - (c.last_polled or now) > 2 * self.stall_after:
                raise StreamGone(f"shard {c.shard_id} had no GetRecords call for {now - (c.last_polled or now):.0f} s",
                                 hint="a full sync repairs it")
        log.warning("shards_stalled", table=self.spec.name, shards=[c.shard_id for c in stalled][:5],
                    count=len(stalled))
        for c in stalled:
            # Polled now, with the iterator it has: an expired one is renewed by the poll's own rules
            # (never a new LATEST, which would skip what was written meanwhile).
            self.stall_repaired.add(c.shard_id)
            c.next_due = now
        return True

    def next_wake(self) -> float:
        """Clock time of the next due poll or describe."""
        return self.shards.next_event()

    def wait(self, stop: threading.Event, longest: float) -> None:
        """Wait for the next due poll or describe (at most `longest` seconds), or less: a shard whose
        feed pushes records (enhanced fan-out) is due as soon as something is pushed to it, unless
        it is backing off."""
        timeout = max(0.0, min(self.next_wake() - self.clock(), longest))
        counts = self.shards.feed.wait_pushed(self.shards.arn, self.pushes_seen, timeout, stop)
        now = self.clock()
        for sid, n in counts.items():
            if self.pushes_seen.get(sid) == n:
                continue
            self.pushes_seen[sid] = n
            c = self.shards.cursors.get(sid)
            if c is not None and not c.failures:
                c.next_due = min(c.next_due, now)
