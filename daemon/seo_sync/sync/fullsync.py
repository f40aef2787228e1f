"""One table's full sync: positions, then Scan into a shadow while the stream is
captured, then the captured records applied to the shadow in order, then one swap transaction.

Capture before copy: stream positions are taken before the first Scan page is read, so every
change the Scan may have missed is in the captured records, and applying them in stream order
after the Scan leaves the shadow equal to the table as of the last record read. Readers see the
old table until the swap commits and the whole new one after it.

Threads: the caller's thread does every cache write. Scan segments run on short-lived worker
threads that hand pages over a bounded queue; one capture thread polls the stream and appends to
a spill buffer that keeps at most `spill_threshold` records in memory and the rest in a temp file.
`progress` is called on the caller's thread between transactions, between calls to AWS, and every
`tick_every` seconds (0.25 s unless the caller asks for less) while waiting for a Scan page, so
the engine can apply live batches there: a batch that arrives during a resync waits for one of
those steps at most.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from seo_sync.aws.tables import Source
from seo_sync.cache.scanned import ScannedPage, scanned_page
from seo_sync.cache.writer import Cache
from seo_sync.changes import to_change
from seo_sync.config import FullSyncSettings, StreamSettings
from seo_sync.errors import FullSyncAborted
from seo_sync.feed import Checkpoint
from seo_sync.schema import TableSpec
from seo_sync.sync.capture import CaptureThread, Spill, catch_up, catch_up_by_arrival
from seo_sync.sync.shards import ShardSet, check_stream

log = structlog.get_logger()
_WAKE = 0.25
# How far past the end of the Scan a shard's catch-up must read, on DynamoDB's record clock (whole
# seconds on AWS). Timed by DynamoDB's own clock (a response's Date header, also whole seconds), two
# seconds cover both roundings; timed by this host's clock, five also cover some skew.
SERVER_CLOCK_MARGIN = 2.0
CATCH_UP_MARGIN = 5.0


@dataclass
class FullSyncResult:
    """What one full sync did."""

    table: str
    rows: int
    stream_records: int
    seconds: float
    stream_arn: str | None
    shards: ShardSet | None = None  # the live cursors after the swap, for the tailer to continue
    checkpoints: list[Checkpoint] = field(default_factory=list)  # what the shadow is complete up to
    published: bool = True  # False: the shadow waits for `Cache.publish` (a first boot)


# -- scan ------------------------------------------------------------------------------------------


class _Scan:
    """Parallel Scan segments on short-lived threads, converted pages handed over a bounded queue.

    Each segment converts its pages into rows itself (`scanned_page`), so reading, converting and
    SQLite's inserts overlap: the writer thread runs SQLite, which releases the GIL, while the
    segments parse and convert. The queue holds up to two pages a segment, so a segment need not
    wait for each insert to finish, and memory stays bounded by page size times segments.
    """

    def __init__(self, source: Source, spec: TableSpec, segments: int, page_limit: int, page_bytes: int,
                 tick_every: float = _WAKE) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=2 * segments)
        self.tick_every = tick_every
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, name=f"scan-{spec.name}-{seg}", daemon=True,
                                         args=(source, spec, seg, segments, page_limit, page_bytes))
                        for seg in range(segments)]
        self.running = segments

    def _put(self, obj: Any) -> bool:
        while not self.halt.is_set():
            try:
                self.q.put(obj, timeout=_WAKE)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Source, spec: TableSpec, seg: int, total: int, page_limit: int, page_bytes: int) -> None:
        try:
            for page in source.scan(spec, seg, total, page_limit=page_limit, page_bytes=page_bytes):
                if not self._put(scanned_page(spec, page)):
                    return
            self._put(None)
        except BaseException as e:
            self._put(e)

    def start(self) -> None:
        """Start every segment."""
        for t in self.threads:
            t.start()

    def pages(self, tick: Callable[[], None]) -> Iterator[list[ScannedPage]]:
        """Every converted page that is ready, in one list per turn, until every segment is done.

        One turn's pages go into one transaction: when SQLite falls behind, commits get fewer
        instead of the segments waiting. `tick` runs while waiting.
        """
        while self.running:
            try:
                ready = [self.q.get(timeout=self.tick_every)]
            except queue.Empty:
                tick()
                continue
            while len(ready) < self.q.maxsize:
                try:
                    ready.append(self.q.get_nowait())
                except queue.Empty:
                    break
            batch: list[ScannedPage] = []
            for obj in ready:
                if obj is None:
                    self.running -= 1
                elif isinstance(obj, BaseException):
                    raise obj
                else:
                    batch.append(obj)
            if batch:
                yield batch

    def stop(self) -> None:
        """Ask the segments to stop and wait for them."""
        self.halt.set()
        for t in self.threads:
            t.join(timeout=30)


# -- the full sync ---------------------------------------------------------------------------------


def full_sync_table(cache: Cache, source: Source, spec: TableSpec, settings: FullSyncSettings, *,
                    capture_stream: bool = True, reason: str = "",
                    progress: Callable[[int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    use_checkpoints: bool = True,
                    stream_settings: StreamSettings | None = None,
                    wall: Callable[[], float] = time.time, publish: bool = True,
                    tick_every: float = _WAKE) -> FullSyncResult:
    """Rebuild one cache table from DynamoDB without ever exposing a half or regressed table.

    With `capture_stream` the stream is captured from positions taken first (valid checkpoints
    unless `use_checkpoints` is False, else LATEST, or a moment before the Scan on a feed without
    per-item order) and the swap writes the checkpoints; without it (the CLI with no daemon) the
    swap writes the stream ARN and no checkpoints. Without `publish` the filled shadow is left for
    the caller to publish with the other tables (`Cache.publish`). `tick_every`: the longest wait
    for a Scan page between two calls of `progress`.
    """
    sync = FullSync(cache, source, spec, settings, capture_stream=capture_stream, reason=reason,
                    progress=progress, should_stop=should_stop, use_checkpoints=use_checkpoints,
                    stream_settings=stream_settings, wall=wall, tick_every=tick_every)
    sync.scan()
    return sync.finish(publish=publish)


class FullSync:
    """One table's full sync in two steps: `scan` (positions, then the Scan into the shadow while
    the capture runs) and `finish` (the catch-up, the captured records applied to the shadow, the
    swap). A first boot scans every table before it finishes any, so the tables' catch-ups, which
    on a feed with late records wait for the lateness after their Scan, overlap. A step that fails
    or is stopped drops the shadow (`abort`) and raises."""

    def __init__(self, cache: Cache, source: Source, spec: TableSpec, settings: FullSyncSettings, *,
                 capture_stream: bool = True, reason: str = "", progress: Callable[[int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, use_checkpoints: bool = True,
                 stream_settings: StreamSettings | None = None, wall: Callable[[], float] = time.time,
                 tick_every: float = _WAKE) -> None:
        self.cache, self.source, self.spec, self.settings = cache, source, spec, settings
        self.capture_stream, self.reason, self.progress = capture_stream, reason, progress
        self.should_stop = should_stop or (lambda: False)
        self.use_checkpoints, self.wall, self.tick_every = use_checkpoints, wall, tick_every
        self.stream_settings = stream_settings or StreamSettings()
        self.ordered = source.streams.per_item_order
        self.started = time.monotonic()
        self.rows = 0
        self.arn: str | None = None
        self.shards: ShardSet | None = None
        self.spill = Spill(settings.spill_threshold)
        self.capture: CaptureThread | None = None
        self.scanner: _Scan | None = None
        self.read_floor: float | None = None  # an unordered feed: no key was read by the Scan before this moment
        self.until = 0.0  # the catch-up reads past this moment (epoch seconds, DynamoDB's clock)
        self.ready_at = 0.0  # by then (on the shards' clock) the stream's clock has passed `until`

    def tick(self) -> None:
        if self.progress is not None:
            self.progress(self.rows)

    def scan(self) -> FullSync:
        """Take the positions, start the capture, and Scan the table into its shadow; itself."""
        try:
            self._scan()
        except BaseException:
            self.abort()
            raise
        return self

    def _scan(self) -> None:
        source, spec = self.source, self.spec
        info = source.describe_table(spec)
        self.arn = info.stream_arn if info.stream_enabled else None
        if self.capture_stream:
            self.arn = check_stream(info)
            self.shards = ShardSet(source.streams, spec.name, self.arn, self.stream_settings, wall=self.wall)
            prior = self.cache.checkpoints(spec.name) if self.use_checkpoints else []
            at_time = None
            if not self.ordered:
                # Records may arrive after later ones and late: start early enough to hold every
                # record the Scan's view of an item can be told apart from (see `_apply_captured`).
                before = source.server_time(spec)
                self.read_floor = before if before is not None else self.wall() - CATCH_UP_MARGIN
                at_time = self.read_floor - SERVER_CLOCK_MARGIN - source.streams.max_lateness
            self.shards.take_positions(prior, at_time)
            self.capture = CaptureThread(self.shards, self.spill)
        log.info("full_sync_started", table=spec.name, reason=self.reason, capture=self.capture_stream,
                 shards=len(self.shards.cursors) if self.shards else 0)
        self.tick()  # the positions took a few calls to AWS
        self.cache.create_shadow(spec)
        fs = self.settings
        self.scanner = _Scan(source, spec, fs.scan_segments, fs.batch_size, fs.scan_page_bytes, self.tick_every)
        if self.capture is not None:
            self.capture.start()
        self.scanner.start()
        # The pages ready at each turn, already converted, in one transaction: pages are sized in
        # bytes and the queue is bounded, so memory does not grow with the table or the item size.
        for batch in self.scanner.pages(self.tick):
            self.rows += self.cache.insert_scanned_pages(spec, batch)
            self.tick()
            if self.should_stop():
                raise FullSyncAborted("full sync stopped")
            if self.capture is not None and self.capture.error is not None:
                raise self.capture.error
        if self.shards is not None:
            self.tick()
            scanned_at = self.wall()
            # Asked after the Scan ended, so DynamoDB's clock bounds it without trusting this host's.
            server_now = source.server_time(spec)
            self.until = server_now + SERVER_CLOCK_MARGIN if server_now is not None else scanned_at + CATCH_UP_MARGIN
            if not self.ordered:
                # Every change made before the Scan ended has arrived by `until` plus the lateness;
                # the stream's clock passes that moment no later than this long from now.
                self.until += source.streams.max_lateness
                now = server_now if server_now is not None else scanned_at
                self.ready_at = self.shards.clock() + self.until - now

    def finish(self, publish: bool = True) -> FullSyncResult:
        """Catch up, apply the captured records to the shadow, and swap it in unless not `publish`."""
        try:
            checkpoints = self._finish(publish)
        except BaseException:
            self.abort()
            raise
        finally:
            self.spill.close()
        if self.scanner is not None:
            self.scanner.stop()
        seconds = time.monotonic() - self.started
        rows = self.cache.count(self.spec.name) if publish else self.rows
        log.info("full_sync_done", table=self.spec.name, rows=rows, stream_records=self.spill.count,
                 spilled=self.spill.spilled, seconds=round(seconds, 3), reason=self.reason, published=publish)
        return FullSyncResult(self.spec.name, rows, self.spill.count, seconds, self.arn, self.shards, checkpoints,
                              publish)

    def _finish(self, publish: bool) -> list[Checkpoint]:
        checkpoints: list[Checkpoint] = []
        shards, capture = self.shards, self.capture
        if capture is not None and shards is not None:
            capture.halt.set()
            capture.join()
            if capture.error is not None:
                raise capture.error
            self.tick()
            if self.ordered:
                catch_up(shards, self.spill, self.should_stop, self.tick, self.until)
            else:
                catch_up_by_arrival(shards, self.spill, self.should_stop, self.tick, self.until, self.ready_at)
            self.tick()
            _apply_captured(self.cache, self.spec, self.spill, self.settings.batch_size, self.tick,
                            ordered=self.ordered, read_floor=self.read_floor)
            checkpoints = shards.checkpoints()
        if self.should_stop():
            raise FullSyncAborted("full sync stopped")
        self.tick()  # the swap is one transaction: what queued before it is applied first
        if publish:
            self.cache.swap_shadow(self.spec, self.arn, checkpoints, self.reason)
        return checkpoints

    def abort(self) -> None:
        """Stop the Scan and the capture and drop the shadow (the live table is untouched)."""
        if self.scanner is not None:
            self.scanner.stop()
        if self.capture is not None:
            self.capture.halt.set()
            if self.capture.is_alive():
                self.capture.join(timeout=30)
        self.cache.drop_shadow(self.spec)
        self.spill.close()


def _apply_captured(cache: Cache, spec: TableSpec, spill: Spill, batch_size: int, tick: Callable[[], None], *,
                    ordered: bool = True, read_floor: float | None = None) -> None:
    """Apply the captured records to the shadow in arrival order, one shard's run at a time.

    A feed with no per-item order is ordered by creation time instead, and each row the Scan wrote
    counts as read from DynamoDB at `read_floor` (when the Scan began; it read the row then or
    later): a record made clearly before it is one the Scan saw, or saw superseded, and is skipped;
    one made clearly after it is newer; one in between is a doubt for a repair read after the swap.
    The capture began before `read_floor` by more than that margin, so an item's record that is
    applied is never missing its newer records made before the Scan read the item.
    """
    chunk: list[Any] = []
    shard = ""
    for sid, rec in spill:
        if chunk and (sid != shard or len(chunk) >= batch_size):
            cache.apply_to_shadow(spec, chunk, shard_id=shard, ordered=ordered, read_floor=read_floor)
            tick()
            chunk = []
        shard = sid
        chunk.append(to_change(spec, rec))
    if chunk:
        cache.apply_to_shadow(spec, chunk, shard_id=shard, ordered=ordered, read_floor=read_floor)
