"""One table's full sync: positions, then Scan into a shadow while the stream is
captured, then the captured records applied to the shadow in order, then one swap transaction.

Capture before copy: stream positions are taken before the first Scan page is read, so every
change the Scan may have missed is in the captured records, and applying them in stream order
after the Scan leaves the shadow equal to the table as of the last record read. Readers see the
old table until the swap commits and the whole new one after it.

Threads: the caller's thread does every cache write. Scan segments run on short-lived worker
threads that hand pages over a bounded queue; one capture thread polls the stream and appends to
a spill buffer that keeps at most `spill_threshold` records in memory and the rest in a temp file.
`progress` is called on the caller's thread between transactions, and every `tick_every` seconds
(0.25 s unless the caller asks for less) while waiting for a Scan page, so the engine can apply
live batches there: a batch that arrives during a resync waits at most that long for the writer.
"""

from __future__ import annotations

import base64
import json
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import structlog

from seo_sync.aws.tables import Source
from seo_sync.cache.scanned import ScannedPage, scanned_page
from seo_sync.cache.sql import Checkpoint
from seo_sync.cache.writer import Cache
from seo_sync.changes import created_at_of, to_change
from seo_sync.config import FullSyncSettings, StreamSettings
from seo_sync.errors import SeoSyncError
from seo_sync.schema import TableSpec
from seo_sync.sync.shards import ShardSet, check_stream

log = structlog.get_logger()
_WAKE = 0.25
# How far past the end of the Scan a shard's catch-up must read, on DynamoDB's record clock (whole
# seconds on AWS). Timed by DynamoDB's own clock (a response's Date header, also whole seconds), two
# seconds cover both roundings; timed by this host's clock, five also cover some skew.
SERVER_CLOCK_MARGIN = 2.0
CATCH_UP_MARGIN = 5.0


class FullSyncAborted(SeoSyncError):
    """The full sync was asked to stop; the shadow was dropped and the live table is untouched."""


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


# -- spill buffer --------------------------------------------------------------------------------


def _encode(o: Any) -> Any:
    if isinstance(o, bytes | bytearray):
        return {"\u0000b": base64.b64encode(bytes(o)).decode("ascii")}
    if isinstance(o, datetime):
        return {"\u0000t": o.timestamp()}
    raise TypeError(type(o).__name__)


def _decode(d: dict[str, Any]) -> Any:
    if len(d) == 1:
        if "\u0000b" in d:
            return base64.b64decode(d["\u0000b"])
        if "\u0000t" in d:
            return float(d["\u0000t"])
    return d


class Spill:
    """Captured (shard, record) pairs in arrival order; past `threshold` in memory, on disk."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.memory: list[tuple[str, dict[str, Any]]] = []
        self.file: IO[str] | None = None
        self.spilled = 0
        self.count = 0
        self.lock = threading.Lock()

    def extend(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Append one page's records."""
        with self.lock:
            self.memory += [(shard_id, r) for r in records]
            self.count += len(records)
            if len(self.memory) >= self.threshold:
                if self.file is None:
                    self.file = tempfile.TemporaryFile("w+", encoding="utf-8")
                for sid, r in self.memory:
                    self.file.write(json.dumps([sid, r], default=_encode, separators=(",", ":")) + "\n")
                self.spilled += len(self.memory)
                self.memory = []

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with self.lock:
            if self.file is not None:
                self.file.flush()
                self.file.seek(0)
                for line in self.file:
                    sid, r = json.loads(line, object_hook=_decode)
                    yield sid, r
            yield from self.memory

    def close(self) -> None:
        """Drop the temp file."""
        if self.file is not None:
            self.file.close()
            self.file = None


class _Capture(threading.Thread):
    """Polls the stream from the positions while the Scan runs."""

    def __init__(self, shards: ShardSet, spill: Spill) -> None:
        super().__init__(name=f"capture-{shards.table}", daemon=True)
        self.shards = shards
        self.spill = spill
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                now = self.shards.clock()
                if self.shards.describe_due(now):
                    self.shards.refresh()
                for c in self.shards.due(now):
                    page = self.shards.poll(c, now)
                    if page is not None and page.records:
                        self.spill.extend(page.shard_id, page.records)
                wait = self.shards.next_event() - self.shards.clock()
                self.halt.wait(max(0.01, min(wait, _WAKE)))
        except BaseException as e:
            self.error = e


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


def _catch_up(shards: ShardSet, spill: Spill, should_stop: Callable[[], bool], tick: Callable[[], None],
              until: float) -> None:
    """Read every shard to its end or past `until`, following children, until a round brings nothing new.

    `until` (epoch seconds) lies after the Scan ended. A shard that delivered a record created after
    it has delivered every change the Scan could have missed (a shard is in write order); the rest
    is the tailer's, after the swap. Reading to the very end instead never finishes while a writer
    keeps writing faster than one GetRecords page an empty poll.
    """
    past: set[str] = set()
    while True:
        got = False
        for c in shards.readable():
            while not c.finished and c.shard_id not in past:
                if should_stop():
                    raise FullSyncAborted("full sync stopped")
                wait = c.next_due - shards.clock()
                if c.failures and wait > 0:
                    tick()
                    time.sleep(min(wait, _WAKE))
                    continue
                page = shards.poll(c)
                if page is None:
                    continue
                if not page.records:
                    break
                got = True
                spill.extend(page.shard_id, page.records)
                newest = created_at_of(page.records[-1])
                if newest is not None and newest > until:
                    past.add(c.shard_id)
        before = set(shards.cursors)
        if any(c.finished for c in shards.cursors.values()):
            shards.refresh()
        if not got and set(shards.cursors) == before:
            return


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
    unless `use_checkpoints` is False, else LATEST) and the swap writes the checkpoints; without it
    (the CLI with no daemon) the swap writes the stream ARN and no checkpoints. Without `publish`
    the filled shadow is left for the caller to publish with the other tables (`Cache.publish`).
    `tick_every`: the longest wait for a Scan page between two calls of `progress`.
    """
    started = time.monotonic()
    should_stop = should_stop or (lambda: False)
    rows = 0

    def tick() -> None:
        if progress is not None:
            progress(rows)

    info = source.describe_table(spec)
    arn = info.stream_arn if info.stream_enabled else None
    shards: ShardSet | None = None
    spill = Spill(settings.spill_threshold)
    capture: _Capture | None = None
    if capture_stream:
        arn = check_stream(info)
        shards = ShardSet(source.streams, spec.name, arn, stream_settings or StreamSettings(), wall=wall)
        prior = cache.checkpoints(spec.name) if use_checkpoints else []
        shards.take_positions(prior)
        capture = _Capture(shards, spill)
    log.info("full_sync_started", table=spec.name, reason=reason, capture=capture_stream,
             shards=len(shards.cursors) if shards else 0)
    cache.create_shadow(spec)
    scan = _Scan(source, spec, settings.scan_segments, settings.batch_size, settings.scan_page_bytes, tick_every)
    try:
        if capture is not None:
            capture.start()
        scan.start()
        # The pages ready at each turn, already converted, in one transaction: pages are sized in
        # bytes and the queue is bounded, so memory does not grow with the table or the item size.
        for batch in scan.pages(tick):
            rows += cache.insert_scanned_pages(spec, batch)
            tick()
            if should_stop():
                raise FullSyncAborted("full sync stopped")
            if capture is not None and capture.error is not None:
                raise capture.error
        checkpoints: list[Checkpoint] = []
        if capture is not None and shards is not None:
            scanned_at = wall()
            capture.halt.set()
            capture.join()
            if capture.error is not None:
                raise capture.error
            # Asked after the Scan ended, so DynamoDB's clock bounds it without trusting this host's.
            server_now = source.server_time(spec)
            until = server_now + SERVER_CLOCK_MARGIN if server_now is not None else scanned_at + CATCH_UP_MARGIN
            _catch_up(shards, spill, should_stop, tick, until)
            _apply_captured(cache, spec, spill, settings.batch_size, tick, ordered=source.streams.per_item_order)
            checkpoints = shards.checkpoints()
        if should_stop():
            raise FullSyncAborted("full sync stopped")
        if publish:
            cache.swap_shadow(spec, arn, checkpoints, reason)
    except BaseException:
        scan.stop()
        if capture is not None:
            capture.halt.set()
            capture.join(timeout=30)
        cache.drop_shadow(spec)
        raise
    finally:
        spill.close()
    scan.stop()
    seconds = time.monotonic() - started
    rows = cache.count(spec.name) if publish else rows
    log.info("full_sync_done", table=spec.name, rows=rows, stream_records=spill.count,
             spilled=spill.spilled, seconds=round(seconds, 3), reason=reason, published=publish)
    return FullSyncResult(spec.name, rows, spill.count, seconds, arn, shards, checkpoints, publish)


def _apply_captured(cache: Cache, spec: TableSpec, spill: Spill, batch_size: int, tick: Callable[[], None], *,
                    ordered: bool = True) -> None:
    """Apply the captured records to the shadow in arrival order, one shard's run at a time (by
    version and creation time instead when the feed has no per-item order)."""
    chunk: list[Any] = []
    shard = ""
    for sid, rec in spill:
        if chunk and (sid != shard or len(chunk) >= batch_size):
            cache.apply_to_shadow(spec, chunk, shard_id=shard, ordered=ordered)
            tick()
            chunk = []
        shard = sid
        chunk.append(to_change(spec, rec))
    if chunk:
        cache.apply_to_shadow(spec, chunk, shard_id=shard, ordered=ordered)
