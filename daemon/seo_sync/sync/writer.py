"""The writer thread: the only thread that writes the cache.

It boots every table (tables never synced: built, then published together by sync/first_boot.py;
the others resume from valid checkpoints, else a full sync), then applies the batches the pollers
hand it, runs jobs submitted by other threads (refresh, maintenance), and runs resyncs.

- Resyncs run here too (several due together: every Scan first, then each catch-up and swap), but
  a full sync calls back between its transactions, between its network calls, and every
  RESYNC_TICK seconds while it waits for a Scan page, and the writer calls back between two
  tables' steps; the writer applies the queued batches and jobs there, so every table keeps
  streaming while one is rebuilt: the table being rebuilt too, whose live rows keep following its
  stream (within the normal lag) until the shadow is swapped in. What holds a live batch is then
  one step at most: one transaction (a turn's Scan pages, a chunk of captured records, a swap) or
  one call to AWS.
- Each table has a generation; the swap of a full sync starts a new one and the writer drops
  batches of an older generation, so a batch read before the swap can never move a checkpoint
  backwards nor touch the table the swap put in place.
- A batch, its rows, tombstones, dead letters and the checkpoint it reaches commit in one
  transaction (`apply_batch`): a crash replays at most that batch, and replaying it is harmless.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import structlog

from seo_sync.aws.answers import on_server_clock
from seo_sync.aws.tables import Source
from seo_sync.backoff import backoff_delay
from seo_sync.cache.sql import ApplyResult
from seo_sync.cache.writer import Cache
from seo_sync.changes import created_at_of, to_change
from seo_sync.config import Settings, StreamSettings
from seo_sync.errors import CacheError, FullSyncAborted, SeoSyncError
from seo_sync.schema import TableSpec
from seo_sync.sync.first_boot import FirstBoot
from seo_sync.sync.fullsync import FullSync
from seo_sync.sync.repair import RepairQueue, RepairReader
from seo_sync.sync.shards import ShardSet, check_stream
from seo_sync.sync.table_state import ERROR_BACKOFF_BASE, TableState
from seo_sync.sync.tailer import Batch, TableTailer
from seo_sync.threads import DeathReport, ServiceThread

log = structlog.get_logger()
WAKE = 0.1  # seconds the writer waits for a batch before its other duties
# A commit that failed (disk full, I/O error) is retried at least this often, so the cache catches
# up within seconds of space coming back; a local retry costs one log line.
COMMIT_RETRY_CAP = 5.0
DRAIN_LIMIT = 200  # batches applied in one turn before jobs and resyncs get a look
# While a resync waits for its next Scan page, live batches queue until the writer's next turn: a
# short turn keeps the added lag small, and an idle turn (nothing queued) costs next to nothing.
RESYNC_TICK = 0.05
RELOAD_REPAIRS_EVERY = 1.0  # seconds between loads of `_sync_repairs` into the repair queue
_T = TypeVar("_T")
Job = tuple[Callable[[Cache], Any], "Future[Any]"]


def apply_batch(cache: Cache, spec: TableSpec, batch: Batch) -> ApplyResult:
    """Translate a batch's records and apply them with its checkpoint in one transaction."""
    changes = [to_change(spec, r) for r in batch.records]
    return cache.apply_batch(spec, changes, batch.checkpoint, shard_id=batch.shard_id, ordered=batch.ordered)


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


class WriterThread(ServiceThread):
    """Owns the cache connection; see the module docstring."""

    def __init__(self, settings: Settings, source: Source, cache: Cache, tables: dict[str, TableState],
                 batches: queue.Queue[Batch], jobs: queue.Queue[Job], stop_event: threading.Event, *,
                 boot_synced: threading.Event, progress: dict[str, float], clock: Callable[[], float] = time.time,
                 on_death: DeathReport | None = None, repairs: RepairQueue | None = None) -> None:
        super().__init__("writer", stop_event, on_death)
        self.settings = settings
        self.source = source
        self.cache = cache
        self.tables = tables
        self.batches = batches
        self.jobs = jobs
        self.boot_synced = boot_synced
        self.progress = progress
        self.clock = clock
        self.repairs = repairs or RepairQueue(settings.verify.repair_reads_per_second, settings.verify.repair_burst)
        # The repair reads are sent on their own thread (the engine's), and their answers applied here.
        self.repair_reader = RepairReader(source, {n: rt.spec for n, rt in tables.items()}, self.repairs)
        self._last_counts = 0.0
        self._last_repair_load = 0.0

    def _mark(self) -> None:
        self.progress[self.name] = time.monotonic()

    def loop(self) -> None:
        self._mark()
        self.load_repairs()
        FirstBoot(self).run()
        self.load_repairs()  # the doubts of the records the first boot captured
        for rt in [t for t in self.tables.values() if not t.started]:
            if self.stop_event.is_set():
                return
            self.start_table(rt)
        while not self.stop_event.is_set():
            self._mark()
            self.run_jobs()
            self.start_or_resync()
            if not self.boot_synced.is_set() and all(rt.started for rt in self.tables.values()):
                self.boot_synced.set()
                log.info("boot_synced", tables=list(self.tables))
            self._drain(WAKE, DRAIN_LIMIT)
            self.reload_repairs()
            self.run_repairs()
            self._update_counts()
        self.run_jobs()

    # -- tables: boot and full sync ----------------------------------------------------------------

    def _new_tailer(self, spec: TableSpec, shards: ShardSet) -> Callable[[int], TableTailer]:
        """What makes the tailer of a table going live, given its new generation."""
        return lambda generation: TableTailer(self.source, spec, shards, self.settings.stream, generation)

    def start_table(self, rt: TableState) -> None:
        """Boot one table: resume from valid checkpoints, else a full sync."""
        spec = rt.spec
        try:
            info = self.source.describe_table(spec)
            arn = check_stream(info)
            problem, gap = resume_problem(self.cache, spec, arn, self.settings.stream, self.clock)
        except SeoSyncError as e:
            rt.retry_in(rt.record_error(e, "boot", self.settings.stream.max_backoff))
            return
        if problem is None:
            shards = ShardSet.from_checkpoints(self.source.streams, spec.name, arn, self.settings.stream,
                                               self.cache.checkpoints(spec.name), wall=self.clock)
            state = self.cache.table_state(spec.name)
            rt.to_streaming(self._new_tailer(spec, shards), stream_arn=arn, rows=self.cache.count(spec.name),
                            last_full_sync=state.get("last_full_sync"), fresh=False)
            log.info("table_resumed", table=spec.name, shards=len(shards.cursors))
            return
        if gap:
            rt.gap_at_boot(problem)
        self._full_sync(rt, problem, gap)

    def start_or_resync(self) -> None:
        """Retry a table whose boot failed, or run the pending resyncs that are due (live batches are
        applied in between)."""
        now = time.monotonic()
        due: list[tuple[TableState, str, bool]] = []
        for rt in self.tables.values():
            if self.stop_event.is_set():
                return
            if not rt.started and not rt.resync_pending:
                if now >= rt.next_attempt:
                    self.start_table(rt)
                continue
            taken = rt.take_due_resync(now)
            if taken is not None:
                due.append((rt, *taken))
        if due:
            try:
                self._full_syncs(due)
            finally:
                for rt, _, _ in due:
                    rt.resync_finished()

    def _full_sync(self, rt: TableState, reason: str, gap: bool) -> None:
        self._full_syncs([(rt, reason, gap)])

    def _full_syncs(self, jobs: list[tuple[TableState, str, bool]]) -> None:
        """Full syncs of these tables: every Scan first, then each table's catch-up and swap, so the
        catch-ups, which on a feed with late records wait out the lateness after their Scan, overlap."""
        def interleave(rows: int) -> None:
            self._mark()
            self.run_jobs()
            self._drain(0.0, 100)
            self.run_repairs()

        scanned: list[tuple[TableState, str, bool, FullSync]] = []
        try:
            self._scan_then_finish(jobs, scanned, interleave)
        finally:
            for _, _, _, sync in scanned:  # left between its steps by an unexpected error: drop it
                sync.abort()
        self.load_repairs()  # a captured record that became a dead letter is read again once its table is live

    def _scan_then_finish(self, jobs: list[tuple[TableState, str, bool]],
                          scanned: list[tuple[TableState, str, bool, FullSync]],
                          interleave: Callable[[int], None]) -> None:
        for rt, reason, gap in jobs:
            rt.start_full_sync(drop_tailer=gap)  # a gap: the feed lost records the live rows needed
            rt.resync_started()
            sync = FullSync(self.cache, self.source, rt.spec, self.settings.fullsync, capture_stream=True,
                            reason=reason, progress=interleave, should_stop=self.stop_event.is_set,
                            use_checkpoints=not gap, stream_settings=self.settings.stream, wall=self.clock,
                            tick_every=RESYNC_TICK)
            if self._attempt(rt, reason, gap, sync.scan) is not None:
                scanned.append((rt, reason, gap, sync))
            interleave(0)
        while scanned:
            rt, reason, gap, sync = scanned.pop(0)
            result = self._attempt(rt, reason, gap, sync.finish)
            if result is not None:
                assert result.shards is not None
                rt.to_streaming(self._new_tailer(rt.spec, result.shards), stream_arn=result.stream_arn,
                                rows=result.rows, last_full_sync=self.clock())
            # Between two tables' swaps: the batches that queued meanwhile wait for one swap, not all of them.
            interleave(0)

    def _attempt(self, rt: TableState, reason: str, gap: bool, step: Callable[[], _T]) -> _T | None:
        """Run one step of a table's full sync and return what it returns; when it is stopped or fails
        (its shadow is dropped then), queue the resync again, after a backoff for a failure: None."""
        try:
            return step()
        except FullSyncAborted:
            rt.resync_again(reason)
        except (SeoSyncError, CacheError) as e:
            rt.resync_again(reason, gap, delay=rt.record_error(e, "full sync", self.settings.stream.max_backoff))
        return None

    # -- jobs and batches --------------------------------------------------------------------------

    def run_jobs(self) -> None:
        """Run every job submitted so far (each answers through its future)."""
        while True:
            try:
                fn, fut = self.jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(self.cache))
            except BaseException as e:
                fut.set_exception(e)

    def load_repairs(self) -> None:
        """Queue the repair reads the cache records as pending: those a crash or a stop left undone,
        and those the records a full sync captured asked for (written to the table only)."""
        self._last_repair_load = time.monotonic()
        for table, key, reason, since in self.cache.pending_repairs():
            if table in self.tables:
                self.repairs.add(table, key, reason, since, recorded=True)

    def reload_repairs(self) -> None:
        """Load `_sync_repairs` again when RELOAD_REPAIRS_EVERY has passed: whatever wrote a doubt
        there, its read is queued within that time."""
        if time.monotonic() - self._last_repair_load >= RELOAD_REPAIRS_EVERY:
            self.load_repairs()

    def repairable(self, table: str) -> bool:
        """Whether a repair read of `table` may run now: it is live and no shadow of it is being built
        (a read applied before the swap would be replaced by the shadow's row; it waits for the swap)."""
        rt = self.tables.get(table)
        return rt is not None and rt.started and rt.state != "syncing"

    def run_repairs(self) -> int:
        """Apply the answers of the repair reads sent so far (consistent reads applied as the truth)."""
        if not self.repair_reader.waiting():
            return 0
        done = self.repair_reader.apply(self.cache, self.repairable)
        if done:
            for rt in self.tables.values():
                rt.mark_dirty()
        return done

    def _drain(self, timeout: float, limit: int) -> None:
        for i in range(limit):
            try:
                b = self.batches.get(timeout=timeout) if i == 0 and timeout > 0 else self.batches.get_nowait()
            except queue.Empty:
                return
            try:
                self.apply(b)
            finally:
                self.batches.task_done()  # counted in flight until applied and accounted (Engine.join)

    def drained(self) -> bool:
        """No batch queued or being applied, and no repair read pending or unapplied."""
        return self.batches.unfinished_tasks == 0 and self.repair_reader.drained()

    def apply(self, b: Batch) -> None:
        """Apply one batch, retrying a failed commit with backoff until it lands or the thread stops."""
        rt = self.tables[b.table]
        failures = 0
        while True:
            if b.generation != rt.generation:
                return  # read before a full sync of this table replaced its data and checkpoints
            try:
                res = apply_batch(self.cache, rt.spec, b)
                if b.drop_shards:
                    self.cache.delete_checkpoints(rt.spec.name, b.drop_shards)
                break
            except CacheError as e:
                # Disk full, a foreign write lock: the batch rolled back and its checkpoint did not
                # move. Back off exponentially (one log line per attempt, so the log rate falls
                # with it) and keep reporting progress: a writer that waits on purpose is not hung.
                delay = backoff_delay(failures, base=ERROR_BACKOFF_BASE,
                                      cap=min(COMMIT_RETRY_CAP, self.settings.stream.max_backoff))
                failures += 1
                log.error("apply_failed", table=b.table, shard=b.shard_id, attempt=failures,
                          retry_in=round(delay, 2), error=e.message[:300])
                rt.commit_failed(e.message[:200], _oldest_change(b))
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    self._mark()
                    self.run_jobs()  # a refresh waiting meanwhile gets its own answer (the same error) now
                    if self.stop_event.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                        return
        if failures:
            rt.commit_recovered()
            log.info("apply_recovered", table=b.table, shard=b.shard_id, attempts=failures + 1)
        self._account(rt, b, res)

    def _account(self, rt: TableState, b: Batch, res: ApplyResult) -> None:
        rt.batch_applied(res, b)
        if b.records:
            now = on_server_clock(getattr(self.source, "server_clock", None), self.clock())  # DynamoDB's clock
            lag_ms = None if b.last_created is None else round(max(0.0, now - b.last_created) * 1000)
            log.info("batch_applied", table=b.table, shard=b.shard_id, records=res.records, lag_ms=lag_ms,
                     upserted=res.upserted, deleted=res.deleted, stale=res.skipped_stale, dead=res.dead,
                     ttl=res.ttl_deletes, seq=b.checkpoint.sequence_number)
        if res.dead:
            log.warning("dead_letters", table=b.table, shard=b.shard_id, count=res.dead)
        for key in res.repair:  # refused as older than a direct read, in doubt, or a dead letter
            self.repairs.add(b.table, key, "stream")

    def _update_counts(self) -> None:
        now = time.monotonic()
        if now - self._last_counts < 1.0:
            return
        self._last_counts = now
        for rt in self.tables.values():
            if rt.take_dirty(self.cache.dead_letter_count(rt.spec.name)):  # dead letters survive restarts
                rt.counted(self.cache.count(rt.spec.name))


def _oldest_change(b: Batch) -> float:
    """When the oldest change of a batch was made (DynamoDB's clock), else when the batch was read."""
    times = [t for t in (created_at_of(r) for r in b.records) if t is not None]
    return min(times, default=b.read_at)
