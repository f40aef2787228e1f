"""A first boot publishes every table at once: never a partial cache.

Tables that never had a complete full sync are each full-synced into their shadow, and nothing of
them is visible until the last one is done: every table is scanned first, then each is finished
(its catch-up and captured records), so the catch-ups, which on a feed with late records wait out
the lateness after their Scan, overlap instead of adding up. Then one transaction swaps all
the shadows in, writes their checkpoints and turns the readiness marker complete
(cache/readiness.py). A reader sees either the empty tables of a cache that is not complete, or
every table complete.

While later tables are still being built, the stream of each built table is followed into its
shadow (same shard cursors, same order), so the checkpoints published with it are current and no
shard position sits unused long enough for its iterator to expire. A table whose build or
following fails is built again after a backoff; the others keep their shadows.

Runs on the writer thread (sync/writer.py), before the tables start streaming; between
transactions it keeps the watchdog progress and the submitted jobs going, like a resync does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import structlog

from seo_sync.aws.tables import Source
from seo_sync.cache.writer import Cache, Swap
from seo_sync.changes import to_change
from seo_sync.config import Settings
from seo_sync.errors import CacheError, FullSyncAborted, SeoSyncError, StreamGone
from seo_sync.schema import TableSpec
from seo_sync.sync.fullsync import FullSync, FullSyncResult
from seo_sync.sync.shards import ShardSet
from seo_sync.sync.table_state import TableState
from seo_sync.sync.tailer import TableTailer

log = structlog.get_logger()
WAKE = 0.1
REASON = "first boot"


class WriterSide(Protocol):
    """What a first boot uses of the writer thread (sync/writer.py), which runs it."""

    settings: Settings
    source: Source
    cache: Cache
    tables: dict[str, TableState]
    clock: Callable[[], float]
    stop_event: threading.Event

    def _mark(self) -> None: ...

    def run_jobs(self) -> None: ...

    def _new_tailer(self, spec: TableSpec, shards: ShardSet) -> Callable[[int], TableTailer]: ...


class FirstBoot:
    """The first-boot phase of the writer: build every never-synced table, then publish them together."""

    def __init__(self, writer: WriterSide) -> None:
        self.writer = writer
        self.stop = writer.stop_event
        self.scanned: dict[str, FullSync] = {}  # scanned, not finished yet
        self.built: dict[str, FullSyncResult] = {}
        self.followers: dict[str, TableTailer] = {}

    def _stopping(self) -> bool:
        return self.stop.is_set()

    def _error(self, rt: TableState, err: SeoSyncError) -> float:
        return rt.record_error(err, REASON, self.writer.settings.stream.max_backoff)

    def run(self) -> None:
        """Return once every waiting table is published and streaming, or when asked to stop."""
        e = self.writer
        waiting = [rt for rt in e.tables.values() if not e.cache.table_state(rt.spec.name).get("last_full_sync")]
        if not waiting:
            return
        log.info("first_boot_started", tables=[rt.spec.name for rt in waiting])
        try:
            while not self._stopping():
                for rt in waiting:
                    name = rt.spec.name
                    if self._stopping():
                        return
                    if name not in self.built and name not in self.scanned and time.monotonic() >= rt.next_attempt:
                        self._scan(rt)
                for rt in waiting:
                    if rt.spec.name in self.scanned and not self._stopping():
                        self._finish(rt)
                if len(self.built) == len(waiting) and self._publish(waiting):
                    return
                self._between()
                self.stop.wait(WAKE)
        finally:
            for sync in self.scanned.values():  # stopped between the steps: nothing of them stays
                sync.abort()

    def _scan(self, rt: TableState) -> None:
        e, spec = self.writer, rt.spec
        rt.start_full_sync(drop_tailer=True)
        sync = FullSync(e.cache, e.source, spec, e.settings.fullsync, capture_stream=True, reason=REASON,
                        progress=lambda rows: self._between(), should_stop=self._stopping, use_checkpoints=False,
                        stream_settings=e.settings.stream, wall=e.clock)
        try:
            sync.scan()
        except FullSyncAborted:
            return
        except (SeoSyncError, CacheError) as err:
            rt.retry_in(self._error(rt, err))
            return
        self.scanned[spec.name] = sync

    def _finish(self, rt: TableState) -> None:
        e, spec = self.writer, rt.spec
        sync = self.scanned.pop(spec.name)
        try:
            result = sync.finish(publish=False)
        except FullSyncAborted:
            return
        except (SeoSyncError, CacheError) as err:
            rt.retry_in(self._error(rt, err))
            return
        assert result.shards is not None
        self.built[spec.name] = result
        self.followers[spec.name] = TableTailer(e.source, spec, result.shards, e.settings.stream, rt.generation)
        rt.shadow_built()
        log.info("first_boot_table_built", table=spec.name, rows=result.rows, waiting_for=[
            n for n in e.tables if n not in self.built])

    def _between(self) -> None:
        """Between transactions: progress for the watchdog, submitted jobs, and the built tables' streams."""
        e = self.writer
        e._mark()
        e.run_jobs()
        for name, tailer in list(self.followers.items()):
            if tailer.next_wake() > tailer.clock():
                continue
            rt = e.tables[name]
            try:
                for batch in tailer.step():
                    if batch.records:
                        e.cache.apply_to_shadow(rt.spec, [to_change(rt.spec, r) for r in batch.records],
                                                shard_id=batch.shard_id, ordered=batch.ordered)
            except (StreamGone, SeoSyncError, CacheError) as err:
                # The cursors may have moved past records the shadow did not take: build it again.
                del self.followers[name], self.built[name]
                rt.retry_in(0.0 if isinstance(err, StreamGone) else self._error(rt, err))
                log.warning("first_boot_table_rebuild", table=name, reason=str(err)[:300])

    def _publish(self, waiting: list[TableState]) -> bool:
        e = self.writer
        swaps = []
        for rt in waiting:
            shards = self.built[rt.spec.name].shards
            assert shards is not None
            swaps.append(Swap(rt.spec, self.built[rt.spec.name].stream_arn, shards.checkpoints(), REASON))
        try:
            e.cache.publish(swaps)
        except CacheError as err:
            delay = self._error(waiting[0], err)
            self.stop.wait(delay)
            return False
        now = e.clock()
        for rt in waiting:
            result = self.built[rt.spec.name]
            assert result.shards is not None
            rt.to_streaming(e._new_tailer(rt.spec, result.shards), stream_arn=result.stream_arn,
                            rows=e.cache.count(rt.spec.name), last_full_sync=now)
        log.info("first_boot_published", tables={rt.spec.name: rt.rows for rt in waiting},
                 complete=e.cache.readiness().complete)
        return True
