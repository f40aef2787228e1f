"""The stream engine: one writer thread that owns the cache, one poller thread per table.

The engine never starts threads: `thread_targets()` gives service.py (or a test) the loops to run.

- Writer: boots the tables (first boot: sync/first_boot.py; else resume or full sync), sets
  `boot_synced`, then applies batches, runs jobs and resyncs.
- A resync of one table runs on the writer, but `full_sync_table` calls back between its
  transactions at least every ~0.25 s; the engine applies the other tables' queued batches and
  jobs there, so the live tables keep streaming while one table is rebuilt.
- Each table has a generation; a full sync starts a new one and the writer drops batches of an
  older generation, so a batch read before the resync can never move a checkpoint backwards.
- Gaps (StreamGone) pause that table's poller and queue a resync of that table alone."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import structlog

from seo_sync.aws.source import Source
from seo_sync.cache.writer import Cache
from seo_sync.codec import is_deleted, version_of
from seo_sync.config import Settings
from seo_sync.errors import CacheBusy, CacheError, SeoSyncError, SourceError, StreamGone
from seo_sync.schema import TABLES
from seo_sync.sync.first_boot import FirstBoot
from seo_sync.sync.fullsync import FullSyncAborted, full_sync_table
from seo_sync.sync.poller import Batch, TableTailer, apply_batch, resume_problem
from seo_sync.sync.shards import ShardSet, check_stream
from seo_sync.sync.table_state import TableRuntime

T = TypeVar("T")
log = structlog.get_logger()
QUEUE_BATCHES = 64
WRITER_WAKE = 0.1
POLLER_MAX_WAIT = 0.5
ERROR_BACKOFF_BASE = 1.0


class Engine:
    """Keeps the cache in step with DynamoDB Streams; see the module docstring for the threads."""

    def __init__(self, settings: Settings, source: Source, cache: Cache, *,
                 clock: Callable[[], float] = time.time, tables: list[str] | None = None) -> None:
        self.settings = settings
        self.source = source
        self.cache = cache
        self.clock = clock
        self.tables: dict[str, TableRuntime] = {n: TableRuntime(TABLES[n]) for n in (tables or list(TABLES))}
        self.boot_synced = threading.Event()
        self._stop = threading.Event()
        self._batches: queue.Queue[Batch] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._jobs: queue.Queue[tuple[Callable[[Cache], Any], Future[Any]]] = queue.Queue()
        self._progress: dict[str, float] = {}
        self._started_at = time.monotonic()
        self._last_counts = 0.0
        self._writer_ident: int | None = None

    # -- public API ------------------------------------------------------------------------------

    def thread_targets(self) -> list[tuple[str, Callable[[threading.Event], None]]]:
        """(thread name, target(stop_event)) for the writer thread and the poller threads."""
        out: list[tuple[str, Callable[[threading.Event], None]]] = [("writer", self._writer_loop)]
        for name in self.tables:
            out.append((f"poller-{name}", self._poller_target(name)))
        return out

    def request_resync(self, table: str | None = None, reason: str = "operator") -> bool:
        """Queue a full resync of one table or all; False if every one asked for was already pending."""
        queued = False
        for rt in self._select(table):
            queued |= self._queue_resync(rt, reason, gap=False)
        return queued

    def refresh(self, table: str, key: tuple[str, ...], timeout: float = 5.0) -> dict:
        """Consistent GetItem, then apply it on the writer thread; returns once committed."""
        spec = TABLES[table] if table in TABLES else self._select(table)[0].spec
        key = tuple(key)
        item = self.source.get_item(spec, key, consistent=True)
        self.submit(lambda c: c.apply_item(spec, key, item), timeout)
        present = item is not None and not is_deleted(item)
        return {"table": spec.name, "key": list(key), "present": present,
                "version": version_of(item) if item is not None else None}

    def submit(self, fn: Callable[[Cache], T], timeout: float = 30.0) -> T:
        """Run fn(cache) on the writer thread and return its result (CacheBusy if not run in time)."""
        if threading.get_ident() == self._writer_ident:
            return fn(self.cache)  # already on the writer (a job submitting a job)
        fut: Future[T] = Future()
        self._jobs.put((fn, fut))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise CacheBusy(f"the writer did not run the job within {timeout:g}s",
                            hint="the daemon is busy or stopping; retry") from None

    def snapshot(self) -> dict:
        """Per-table state and stream call counters, JSON-able."""
        now = self.clock()
        tables = {}
        for name, rt in self.tables.items():
            with rt.lock:
                tables[name] = rt.status(now)
        hours = max((time.monotonic() - self._started_at) / 3600, 1e-9)
        calls = self.source.streams.get_records_calls
        return {"tables": tables, "get_records_calls": calls,
                "describe_stream_calls": self.source.streams.describe_stream_calls,
                "get_records_per_hour": round(calls / hours, 1)}

    def progress(self) -> dict[str, float]:
        """Thread name -> time.monotonic() of its last completed loop iteration."""
        return dict(self._progress)

    def stop(self) -> None:
        """Ask every loop to finish the batch in hand, commit, and return."""
        self._stop.set()

    # -- helpers ---------------------------------------------------------------------------------

    def _select(self, table: str | None) -> list[TableRuntime]:
        if table is None:
            return list(self.tables.values())
        for rt in self.tables.values():
            if table in (rt.spec.name, rt.spec.entity, rt.spec.dynamo_name(self.settings.table_prefix)):
                return [rt]
        raise SeoSyncError(f"unknown table {table!r}", hint=f"one of: {', '.join(self.tables)}")

    def _queue_resync(self, rt: TableRuntime, reason: str, gap: bool) -> bool:
        with rt.lock:
            if rt.resync_pending:
                rt.resync_is_gap |= gap
                return False
            rt.resync_pending, rt.resync_reason, rt.resync_is_gap = True, reason, gap
            rt.next_attempt = 0.0
        log.info("resync_requested", table=rt.spec.name, reason=reason, gap=gap)
        return True

    def _mark(self, name: str) -> None:
        self._progress[name] = time.monotonic()

    def _backoff(self, failures: int) -> float:
        return min(self.settings.stream.max_backoff, ERROR_BACKOFF_BASE * 2 ** max(0, failures - 1)) \
            * (0.5 + 0.5 * random.random())

    def _set_error(self, rt: TableRuntime, e: SeoSyncError, what: str) -> float:
        with rt.lock:
            rt.failures += 1
            rt.state, rt.error = "error", e.message
            delay = self._backoff(rt.failures)
        log.error("table_error", table=rt.spec.name, during=what, error=e.message[:300],
                  retry_in=round(delay, 2), attempt=rt.failures)
        return delay

    # -- writer ----------------------------------------------------------------------------------

    def _stopping(self, stop: threading.Event) -> bool:
        return stop.is_set() or self._stop.is_set()

    def _writer_loop(self, stop: threading.Event) -> None:
        self._writer_ident = threading.get_ident()
        self._mark("writer")
        FirstBoot(self, stop).run()
        for rt in [t for t in self.tables.values() if not t.started]:
            if self._stopping(stop):
                return
            self._start_table(rt, stop)
        while not self._stopping(stop):
            self._mark("writer")
            self._run_jobs()
            self._maybe_start_or_resync(stop)
            if not self.boot_synced.is_set() and all(rt.started for rt in self.tables.values()):
                self.boot_synced.set()
                log.info("boot_synced", tables=list(self.tables))
            self._drain(stop, WRITER_WAKE, 200)
            self._update_counts()
        self._run_jobs()

    def _start_table(self, rt: TableRuntime, stop: threading.Event) -> None:
        """Boot one table: resume from valid checkpoints, else a full sync."""
        spec = rt.spec
        try:
            info = self.source.describe_table(spec)
            arn = check_stream(info)
            problem, gap = resume_problem(self.cache, spec, arn, self.settings.stream, self.clock)
        except SeoSyncError as e:
            rt.next_attempt = time.monotonic() + self._set_error(rt, e, "boot")
            return
        if problem is None:
            shards = ShardSet.from_checkpoints(self.source.streams, spec.name, arn, self.settings.stream,
                                               self.cache.checkpoints(spec.name), wall=self.clock)
            state = self.cache.table_state(spec.name)
            with rt.lock:
                rt.generation += 1
                rt.tailer = TableTailer(self.source, spec, shards, self.settings.stream, rt.generation)
                rt.state, rt.error, rt.started, rt.failures = "streaming", None, True, 0
                rt.stream_arn, rt.last_full_sync = arn, state.get("last_full_sync")
                rt.rows = self.cache.count(spec.name)
            log.info("table_resumed", table=spec.name, shards=len(shards.cursors))
            return
        if gap:
            with rt.lock:
                rt.gaps += 1
                rt.last_gap_reason = problem
            log.warning("gap_detected", table=spec.name, reason=problem)
        self._full_sync(rt, problem, gap, stop)

    def _maybe_start_or_resync(self, stop: threading.Event) -> None:
        now = time.monotonic()
        for rt in self.tables.values():
            if self._stopping(stop):
                return
            if not rt.started and not rt.resync_pending:
                if now >= rt.next_attempt:
                    self._start_table(rt, stop)
                continue
            with rt.lock:
                go = rt.resync_pending and now >= rt.next_attempt
                if go:
                    rt.resync_pending, rt.resync_running = False, True
                    reason, gap = rt.resync_reason, rt.resync_is_gap
            if go:
                try:
                    self._full_sync(rt, reason, gap, stop)
                finally:
                    rt.resync_running = False
                return  # one full sync per writer iteration; live batches get applied in between

    def _full_sync(self, rt: TableRuntime, reason: str, gap: bool, stop: threading.Event) -> None:
        spec = rt.spec
        with rt.lock:
            rt.generation += 1
            rt.tailer = None
            rt.state = "syncing"

        def interleave(rows: int) -> None:
            self._mark("writer")
            self._run_jobs()
            self._drain(stop, 0.0, 100)

        try:
            result = full_sync_table(self.cache, self.source, spec, self.settings.fullsync, capture_stream=True,
                                     reason=reason, progress=interleave,
                                     should_stop=lambda: self._stopping(stop), use_checkpoints=not gap,
                                     stream_settings=self.settings.stream, wall=self.clock)
        except FullSyncAborted:
            with rt.lock:
                rt.resync_pending, rt.resync_reason = True, reason
            return
        except (SeoSyncError, CacheError) as e:
            delay = self._set_error(rt, e, "full sync")
            with rt.lock:
                rt.resync_pending, rt.resync_reason, rt.resync_is_gap = True, reason, gap or rt.resync_is_gap
                rt.next_attempt = time.monotonic() + delay
            return
        assert result.shards is not None
        with rt.lock:
            rt.generation += 1
            rt.tailer = TableTailer(self.source, spec, result.shards, self.settings.stream, rt.generation)
            rt.state, rt.error, rt.started, rt.failures = "streaming", None, True, 0
            rt.rows, rt.stream_arn, rt.last_full_sync = result.rows, result.stream_arn, self.clock()
            rt.idle, rt.last_created = True, None

    def _run_jobs(self) -> None:
        while True:
            try:
                fn, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(self.cache))
            except BaseException as e:
                fut.set_exception(e)

    def _drain(self, stop: threading.Event, timeout: float, limit: int) -> None:
        for i in range(limit):
            try:
                b = self._batches.get(timeout=timeout) if i == 0 and timeout > 0 else self._batches.get_nowait()
            except queue.Empty:
                return
            self._apply(b, stop)

    def _apply(self, b: Batch, stop: threading.Event) -> None:
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
                delay = self._backoff(failures)
                failures += 1
                log.error("apply_failed", table=b.table, shard=b.shard_id, attempt=failures,
                          retry_in=round(delay, 2), error=e.message[:300])
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    self._mark("writer")
                    if self._stopping(stop) or stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                        return
        if failures:
            log.info("apply_recovered", table=b.table, shard=b.shard_id, attempts=failures + 1)
        with rt.lock:
            rt.records_applied += res.records
            rt.skipped_stale += res.skipped_stale
            rt.dead_letters += res.dead
            rt.ttl_deletes += res.ttl_deletes
            if b.checkpoint.sequence_number:
                rt.last_sequence = b.checkpoint.sequence_number
            if b.last_created is not None:
                rt.last_created = b.last_created
            rt.dirty = rt.dirty or bool(b.records)
        if b.records:
            lag_ms = None if b.last_created is None else round(max(0.0, self.clock() - b.last_created) * 1000)
            log.info("batch_applied", table=b.table, shard=b.shard_id, records=res.records, lag_ms=lag_ms,
                      upserted=res.upserted, deleted=res.deleted, stale=res.skipped_stale, dead=res.dead,
                      ttl=res.ttl_deletes, seq=b.checkpoint.sequence_number)
        if res.dead:
            log.warning("dead_letters", table=b.table, shard=b.shard_id, count=res.dead)

    def _update_counts(self) -> None:
        now = time.monotonic()
        if now - self._last_counts < 1.0:
            return
        self._last_counts = now
        for rt in self.tables.values():
            if rt.dirty:
                rt.dirty = False
                rt.rows = self.cache.count(rt.spec.name)

    # -- pollers ---------------------------------------------------------------------------------

    def _poller_target(self, name: str) -> Callable[[threading.Event], None]:
        def run(stop: threading.Event) -> None:
            self._poller_loop(name, stop)
        return run

    def _poller_loop(self, name: str, stop: threading.Event) -> None:
        thread = f"poller-{name}"
        rt = self.tables[name]
        while not self._stopping(stop):
            self._mark(thread)
            tailer = rt.tailer
            if tailer is None or tailer.generation != rt.generation:
                stop.wait(WRITER_WAKE)
                continue
            try:
                batches = tailer.step()
                for b in batches:
                    if not self._put(b, stop):
                        return
                with rt.lock:
                    rt.idle = tailer.idle
                    if rt.state == "error" and tailer.generation == rt.generation:
                        log.info("table_recovered", table=name)
                        rt.state, rt.error, rt.failures = "streaming", None, 0
                wait = tailer.next_wake() - tailer.clock()
                stop.wait(max(0.0, min(wait, POLLER_MAX_WAIT)))
            except StreamGone as e:
                self._gap(rt, tailer.generation, e.message)
            except SourceError as e:
                stop.wait(self._set_error(rt, e, "tail"))
            except Exception:
                log.exception("poller_failed", table=name)
                stop.wait(self._set_error(rt, SeoSyncError("internal error in the poller"), "tail"))

    def _put(self, b: Batch, stop: threading.Event) -> bool:
        while not self._stopping(stop):
            try:
                self._batches.put(b, timeout=WRITER_WAKE)
                return True
            except queue.Full:
                self._mark(f"poller-{b.table}")
        return False

    def _gap(self, rt: TableRuntime, generation: int, reason: str) -> None:
        with rt.lock:
            if rt.generation != generation:
                return
            rt.tailer = None
            rt.gaps += 1
            rt.last_gap_reason = reason
            rt.state = "resync_pending"
        log.warning("gap_detected", table=rt.spec.name, reason=reason)
        self._queue_resync(rt, f"gap: {reason}", gap=True)
