"""The stream engine: wires one writer thread that owns the cache, one poller thread per table, and
the thread that sends the repair reads (their answers are applied by the writer).

The engine builds the threads (`threads()`) but never starts them: the service's lifecycle does,
and stops them through the engine's stop event. Other threads talk to the writer only through the
engine: `submit` runs a job on the writer, `request_resync` queues a full sync, `refresh` applies
one item read from DynamoDB; `snapshot` and `progress` are what status and the watchdog read.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from seo_sync.aws.answers import on_server_clock
from seo_sync.aws.reachability import NETWORK
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.config import Settings
from seo_sync.errors import CacheBusy, CacheError, SeoSyncError
from seo_sync.schema import TABLES, VERSION_ATTR
from seo_sync.sync.anti_entropy import RollingVerify
from seo_sync.sync.poller import PollerThread
from seo_sync.sync.repair import RepairQueue, RepairThread
from seo_sync.sync.table_state import TableState
from seo_sync.sync.tailer import Batch
from seo_sync.sync.writer import Job, WriterThread
from seo_sync.threads import DeathReport, ServiceThread

T = TypeVar("T")
JOIN_POLL = 0.01  # seconds between two looks of `join` at the writer's queue and the repair reads
QUEUE_BATCHES = 64  # batches in flight from the pollers to the writer (bounded: a slow disk slows reading)


class Engine:
    """Keeps the cache in step with the change feeds of the tables; see the module docstring."""

    def __init__(self, settings: Settings, source: Source, cache: Cache, *,
                 clock: Callable[[], float] = time.time, tables: list[str] | None = None,
                 on_thread_death: DeathReport | None = None) -> None:
        self.settings = settings
        self.source = source
        self.clock = clock
        # Marks expire with the tombstones; a record older than what they remember is a doubt (order.py).
        cache.mark_lifetime = settings.maintenance.tombstone_ttl_hours * 3600
        self.tables: dict[str, TableState] = {n: TableState(TABLES[n]) for n in (tables or list(TABLES))}
        self.boot_synced = threading.Event()
        self.stop_event = threading.Event()
        self._progress: dict[str, float] = {}
        self._started_at = time.monotonic()
        batches: queue.Queue[Batch] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._jobs: queue.Queue[Job] = queue.Queue()
        self.repairs = RepairQueue(settings.verify.repair_reads_per_second, settings.verify.repair_burst)
        self.writer = WriterThread(settings, source, cache, self.tables, batches, self._jobs, self.stop_event,
                                   boot_synced=self.boot_synced, progress=self._progress, clock=clock,
                                   on_death=on_thread_death, repairs=self.repairs)
        self.verify = RollingVerify(source, {n: rt.spec for n, rt in self.tables.items()}, settings.verify,
                                    self.submit, self.repairs, is_ready=self._streaming)
        self.repair_reader = self.writer.repair_reader
        self.repair_thread = RepairThread(self.repair_reader, self.writer.repairable, self.stop_event,
                                          self._progress, settings.stream.max_backoff, on_death=on_thread_death)
        self.pollers = [PollerThread(rt, batches, self.stop_event, self._progress, settings.stream.max_backoff,
                                     on_death=on_thread_death) for rt in self.tables.values()]

    def _streaming(self, table: str) -> bool:
        rt = self.tables[table]
        with rt.lock:
            return rt.started and rt.state == "streaming" and not rt.resync_pending

    def threads(self) -> list[ServiceThread]:
        """The writer, the repair reads' thread and the pollers, not started (the lifecycle starts them)."""
        return [self.writer, self.repair_thread, *self.pollers]

    def request_resync(self, table: str | None = None, reason: str = "operator") -> bool:
        """Queue a full resync of one table or all; False if every one asked for was already pending."""
        queued = False
        for rt in self._select(table):
            queued |= rt.queue_resync(reason, gap=False, min_interval=self.settings.control.min_resync_interval)
        return queued

    def resync_starts_in(self, table: str | None = None) -> float:
        """Seconds until the last of the pending full syncs of these tables may start (0: now or running)."""
        waits = [rt.resync_starts_in() for rt in self._select(table)]
        return max((w for w in waits if w is not None), default=0.0)

    def refresh_business(self, business_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Every table's items of one business read consistently (one Query each) and applied as the
        truth on the writer thread, in one transaction: keys DynamoDB no longer holds leave the cache."""
        self._check_writable()
        read_at = self.clock()
        items = {rt.spec.name: self.source.query_business(rt.spec, business_id) for rt in self.tables.values()}

        def apply(c: Cache) -> dict[str, dict[str, int]]:
            reader = Reader(c.conn)
            held = {name: {tuple(str(r[k]) for k in TABLES[name].key_names)
                           for r in reader.rows(TABLES[name], business_id)} for name in items}
            c.replace_business(business_id, items, read_at=read_at)
            return {name: {"keys": len(held[name] | {TABLES[name].key_of_item(it) for it in found}),
                           "rows": sum(1 for _ in reader.rows(TABLES[name], business_id))}
                    for name, found in items.items()}

        return {"business_id": business_id, "tables": self.submit(apply, timeout)}

    def refresh(self, table: str, key: tuple[str, ...], timeout: float = 5.0) -> dict:
        """Consistent GetItem applied as the truth on the writer thread; answers with what the cache
        holds after that commit (present, and its `_version`)."""
        spec = TABLES[table] if table in TABLES else self._select(table)[0].spec
        key = tuple(key)
        self._check_writable()
        # Stamped by DynamoDB's clock (the answer's Date), so a host clock ahead does not make the
        # next writes look older than this read; an "absent" answer is read twice before a row goes.
        read = self.source.read_item(spec, key, live=True)

        def apply(c: Cache) -> tuple[Any, ...] | None:
            c.apply_item(spec, key, read.item, read_at=read.at)
            return c.row(spec, key)

        row = self.submit(apply, timeout)
        self.repairs.discard(spec.name, key)
        version = row[spec.column_names.index(VERSION_ATTR)] if row is not None else None
        return {"table": spec.name, "key": list(key), "present": row is not None,
                "version": version if isinstance(version, int) else None}

    def _check_writable(self) -> None:
        """A refresh could not be committed while changes cannot be: say so at once, read nothing."""
        for rt in self.tables.values():
            with rt.lock:
                error = rt.commit_error
            if error:
                raise CacheError(f"{error}; the daemon retries by itself and catches up",
                                 hint="free space on the data directory's disk (or fix its I/O error)")

    def submit(self, fn: Callable[[Cache], T], timeout: float = 30.0) -> T:
        """Run fn(cache) on the writer thread and return its result (CacheBusy if not run in time)."""
        if threading.get_ident() == self.writer.ident:
            return fn(self.writer.cache)  # already on the writer (a job submitting a job)
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
        now = on_server_clock(getattr(self.source, "server_clock", None), self.clock())
        tables = {}
        for name, rt in self.tables.items():
            with rt.lock:
                tables[name] = rt.status(now)  # lag against DynamoDB's clock, whatever this host's says
        hours = max((time.monotonic() - self._started_at) / 3600, 1e-9)
        calls = self.source.streams.get_records_calls
        out = {"tables": tables, "repairs": self.repairs.status(),
               "anti_entropy": self.verify.status(), "get_records_calls": calls,
               "describe_stream_calls": self.source.streams.describe_stream_calls,
               "get_records_per_hour": round(calls / hours, 1), "feed": self.source.streams.status(),
               "dynamodb": NETWORK.status(), "threads": self._thread_ages()}
        return out

    def _thread_ages(self) -> dict[str, Any]:
        """Seconds since each worker last finished a loop, and the workers waiting inside an AWS call."""
        now = time.monotonic()
        return {"loop_age_seconds": {name: round(max(0.0, now - at), 3) for name, at in sorted(self._progress.items())},
                "in_aws_call": sorted(NETWORK.waiting())}

    def progress(self) -> dict[str, float]:
        """Thread name -> time.monotonic() of its last sign of life: a completed loop iteration, or now for a
        thread inside an AWS call still within its bound (waiting on the network is not being hung)."""
        out = dict(self._progress)
        for name, now in NETWORK.waiting().items():
            if name in out:
                out[name] = max(out[name], now)
        return out

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until the batches the pollers queued are applied and the repair reads are drained (none
        pending, being sent, or answered and not applied); False if that did not happen in `timeout` s.
        Records the pollers have not read yet are not waited for."""
        deadline = time.monotonic() + timeout
        while not self.writer.drained():
            if time.monotonic() >= deadline:
                return False
            time.sleep(JOIN_POLL)
        return True

    def stop(self) -> None:
        """Ask every thread to finish the batch in hand, commit, and return."""
        self.stop_event.set()

    def _select(self, table: str | None) -> list[TableState]:
        if table is None:
            return list(self.tables.values())
        for rt in self.tables.values():
            if table in (rt.spec.name, rt.spec.entity, rt.spec.dynamo_name(self.settings.table_prefix)):
                return [rt]
        raise SeoSyncError(f"unknown table {table!r}", hint=f"one of: {', '.join(self.tables)}")
