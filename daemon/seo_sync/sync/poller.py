"""Tailing one table's stream: shard graph refresh, gap detection, polling, and applying a batch.

A `TableTailer` runs on a poller thread and turns GetRecords pages into `Batch`es; the writer
thread applies each with `apply_batch` (rows, tombstones, dead letters and the shard checkpoint in
one transaction). Gaps (DESIGN §3.4) raise StreamGone: the engine answers with a full sync of that
table alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from seo_sync.aws.tables import Source
from seo_sync.cache.sql import ApplyResult, Checkpoint
from seo_sync.cache.writer import Cache
from seo_sync.changes import created_at_of, to_change
from seo_sync.config import StreamSettings
from seo_sync.errors import StreamGone
from seo_sync.schema import TableSpec
from seo_sync.sync.shards import IDLE_TOUCH_SECONDS, ShardSet, check_stream

log = structlog.get_logger()


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


def resume_problem(cache: Cache, spec: TableSpec, arn: str, settings: StreamSettings,
                   wall: Callable[[], float] = time.time) -> tuple[str | None, bool]:
    """Why the committed checkpoints cannot be resumed: (reason or None, is it a gap?)."""
    state = cache.table_state(spec.name)
    cps = cache.checkpoints(spec.name)
    if not state.get("last_full_sync"):
        return "no complete full sync yet", False
    if not cps:
        return "no stream checkpoints", False
    if state.get("stream_arn") != arn or any(cp.stream_arn != arn for cp in cps):
        return f"stream ARN changed (checkpoint {state.get('stream_arn')}, table {arn})", True
    if any(not cp.closed and cp.sequence_number is None and cp.latest_as_of is not None for cp in cps):
        return "a shard was at LATEST without a record when the process stopped", False
    max_age = settings.checkpoint_max_age_hours * 3600
    stale = [cp.shard_id for cp in cps if not cp.closed and wall() - cp.updated_at > max_age]
    if stale:
        return f"checkpoint older than {settings.checkpoint_max_age_hours:g} h on shard {stale[0]}", True
    return None, False


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
            page = self.shards.poll(c, now)
            if page is None:
                continue
            touch = now - c.last_handed >= IDLE_TOUCH_SECONDS
            if page.records or page.finished_now or touch:
                c.last_handed = now
                out.append(Batch(self.spec.name, self.generation, page.shard_id, page.records, page.checkpoint,
                                 created_at_of(page.records[-1]) if page.records else None))
        if out and self.dropped_checkpoints:
            out[0].drop_shards, self.dropped_checkpoints = self.dropped_checkpoints, []
        self.idle = not out or all(not b.records for b in out)
        return out

    def next_wake(self) -> float:
        """Clock time of the next due poll or describe."""
        return self.shards.next_event()


def apply_batch(cache: Cache, spec: TableSpec, batch: Batch) -> ApplyResult:
    """Translate a batch's records and apply them with its checkpoint in one transaction."""
    changes = [to_change(spec, r) for r in batch.records]
    return cache.apply_batch(spec, changes, batch.checkpoint, shard_id=batch.shard_id)
