"""What the engine knows about one table, shared by the writer thread and that table's poller.

A table's state changes only through the transitions below, each under the table's lock: the writer
and the poller call them and read the fields, and no other module assigns a field (a repository test
checks that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from seo_sync.backoff import backoff_delay
from seo_sync.cache.sql import ApplyResult
from seo_sync.errors import SeoSyncError
from seo_sync.schema import TableSpec
from seo_sync.sync.tailer import Batch, TableTailer

# starting: not booted yet; syncing: a full sync builds its data; streaming: its feed is tailed;
# error: the last attempt failed (retried); resync_pending: its feed lost records, a full sync is due.
Phase = Literal["starting", "syncing", "streaming", "error", "resync_pending"]

log = structlog.get_logger()
ERROR_BACKOFF_BASE = 1.0  # seconds before a table's first retry after an error


@dataclass
class TableState:
    """One table's state (shared between threads under `lock`)."""

    spec: TableSpec
    state: Phase = "starting"
    error: str | None = None
    gaps: int = 0
    last_gap_reason: str | None = None
    dead_letters: int = 0
    skipped_stale: int = 0
    ttl_deletes: int = 0
    records_applied: int = 0
    rows: int = 0
    last_full_sync: float | None = None
    stream_arn: str | None = None
    last_sequence: str | None = None
    last_created: float | None = None
    idle: bool = True
    generation: int = 0
    tailer: TableTailer | None = None
    started: bool = False
    resync_pending: bool = False
    resync_running: bool = False
    resync_reason: str = ""
    resync_is_gap: bool = False
    resync_started_at: float | None = None  # time.monotonic() when its last full sync started
    resyncs_started: int = 0
    resyncs_coalesced: int = 0
    failures: int = 0
    next_attempt: float = 0.0
    dirty: bool = False
    commit_error: str | None = None  # why the changes read for this table cannot be committed now
    uncommitted_since: float | None = None  # creation time of the oldest change not yet committed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, now: float) -> dict[str, Any]:
        """This table's part of the engine snapshot (JSON-able); call with `lock` held."""
        lag = 0.0 if self.idle or self.last_created is None else max(0.0, now - self.last_created)
        if self.uncommitted_since is not None:  # changes wait: the lag grows with them, never 0.0
            lag = max(lag, now - self.uncommitted_since)
        return {
            "rows": self.rows, "last_full_sync": self.last_full_sync, "stream_arn": self.stream_arn,
            "shards": len(self.tailer.shards.cursors) if self.tailer else 0, "last_sequence": self.last_sequence,
            "lag_seconds": round(lag, 3),
            "state": "resync_pending" if self.resync_pending and self.state == "streaming" else self.state,
            "error": self.error or self.commit_error, "commit_error": self.commit_error,
            "gaps": self.gaps, "last_gap_reason": self.last_gap_reason,
            "dead_letters": self.dead_letters, "skipped_stale": self.skipped_stale,
            "ttl_deletes": self.ttl_deletes, "records_applied": self.records_applied,
            "stalled_shards": self.tailer.stalled_shards() if self.tailer else 0,
            "full_syncs_started": self.resyncs_started, "resyncs_coalesced": self.resyncs_coalesced,
        }

    # -- transitions of the table's data: full sync, streaming, errors ------------------------------

    def start_full_sync(self, drop_tailer: bool) -> None:
        """A full sync starts building this table's data; with drop_tailer its feed stops being tailed
        (the live rows cannot be kept in step until the swap)."""
        with self.lock:
            if drop_tailer:
                self.generation += 1
                self.tailer = None
            self.state = "syncing"

    def shadow_built(self) -> None:
        """A first boot built this table's shadow; it waits for the others before it is published."""
        with self.lock:
            self.state, self.error, self.failures = "syncing", None, 0

    def to_streaming(self, make_tailer: Callable[[int], TableTailer], *, stream_arn: str | None, rows: int,
                     last_full_sync: float | None, fresh: bool = True) -> None:
        """The table is live: its feed is tailed from now on by a tailer of a new generation (batches
        of an older one are dropped). `fresh`: its data was just built, so no change waits to be read."""
        with self.lock:
            self.generation += 1
            self.tailer = make_tailer(self.generation)
            self.state, self.error, self.started, self.failures = "streaming", None, True, 0
            self.rows, self.stream_arn, self.last_full_sync = rows, stream_arn, last_full_sync
            if fresh:
                self.idle, self.last_created = True, None

    def polled(self, tailer: TableTailer) -> bool:
        """The poller read this table's feed without an error: True when that ends an error state."""
        with self.lock:
            self.idle = tailer.idle
            if self.state == "error" and tailer.generation == self.generation:
                self.state, self.error, self.failures = "streaming", None, 0
                return True
            return False

    def retry_in(self, delay: float) -> None:
        """Try this table's failed boot or full sync again after `delay` seconds."""
        with self.lock:
            self.next_attempt = time.monotonic() + delay

    def record_error(self, e: SeoSyncError, during: str, max_backoff: float) -> float:
        """Mark the table in error and return how long to wait before trying again."""
        with self.lock:
            self.failures += 1
            self.state, self.error = "error", e.message
            delay = backoff_delay(self.failures, base=ERROR_BACKOFF_BASE, cap=max_backoff)
        log.error("table_error", table=self.spec.name, during=during, error=e.message[:300],
                  retry_in=round(delay, 2), attempt=self.failures)
        return delay

    def commit_failed(self, error: str, oldest_change: float) -> None:
        """A batch read for this table could not be committed (disk full, I/O error, read-only file)."""
        with self.lock:
            self.commit_error = f"cannot commit changes to the cache: {error}"
            if self.uncommitted_since is None or oldest_change < self.uncommitted_since:
                self.uncommitted_since = oldest_change

    def commit_recovered(self) -> None:
        """The batch that could not be committed now is: the table's changes land again."""
        with self.lock:
            self.commit_error = None
            self.uncommitted_since = None

    # -- transitions of the counters -----------------------------------------------------------------

    def batch_applied(self, res: ApplyResult, b: Batch) -> None:
        """A batch of this table's feed is committed."""
        with self.lock:
            self.records_applied += res.records
            self.skipped_stale += res.skipped_stale
            self.dead_letters += res.dead
            self.ttl_deletes += res.ttl_deletes
            if b.checkpoint.sequence_number:
                self.last_sequence = b.checkpoint.sequence_number
            if b.last_created is not None:
                self.last_created = b.last_created
            self.dirty = self.dirty or bool(b.records)

    def mark_dirty(self) -> None:
        """Rows changed outside the feed's batches (repair reads): count them again."""
        with self.lock:
            self.dirty = True

    def take_dirty(self, dead_letters: int) -> bool:
        """Take the cache's dead-letter count; True (once) when the rows must be counted again."""
        with self.lock:
            self.dead_letters = dead_letters
            dirty, self.dirty = self.dirty, False
            return dirty

    def counted(self, rows: int) -> None:
        """The table's rows as counted in the cache."""
        with self.lock:
            self.rows = rows

    # -- transitions of the resync requests ----------------------------------------------------------

    def queue_resync(self, reason: str, gap: bool, min_interval: float = 0.0) -> bool:
        """Ask for a full sync of this table; False if one was already pending (they coalesce).

        A requested one starts no sooner than `min_interval` seconds after the last one started (a
        loop of `resync` costs one Scan an interval, not one a request); a gap starts at once."""
        with self.lock:
            floor = 0.0 if gap or self.resync_started_at is None else self.resync_started_at + min_interval
            if self.resync_pending:
                self.resync_is_gap |= gap
                if gap:
                    self.next_attempt = 0.0
                self.resyncs_coalesced += 1
                return False
            self.resync_pending, self.resync_reason, self.resync_is_gap = True, reason, gap
            self.next_attempt = floor
            if floor > time.monotonic():
                self.resyncs_coalesced += 1  # it waits for the interval's end, where later ones join it
        log.info("resync_requested", table=self.spec.name, reason=reason, gap=gap)
        return True

    def take_due_resync(self, now: float) -> tuple[str, bool] | None:
        """The pending full sync's (reason, gap) when it is due at `now`: it runs from then on."""
        with self.lock:
            if not (self.resync_pending and now >= self.next_attempt):
                return None
            self.resync_pending, self.resync_running = False, True
            return self.resync_reason, self.resync_is_gap

    def resync_finished(self) -> None:
        """The full sync taken by `take_due_resync` is over (done, or queued again)."""
        with self.lock:
            self.resync_running = False

    def resync_again(self, reason: str, gap: bool = False, delay: float | None = None) -> None:
        """A full sync stopped or failed before its swap: it is pending again, after `delay` seconds
        when given (a failure's backoff), else as soon as it was due."""
        with self.lock:
            self.resync_pending, self.resync_reason = True, reason
            self.resync_is_gap = gap or self.resync_is_gap
            if delay is not None:
                self.next_attempt = time.monotonic() + delay

    def resync_starts_in(self) -> float | None:
        """Seconds until the pending full sync may start (0 when due), None when none is pending."""
        with self.lock:
            if not self.resync_pending:
                return 0.0 if self.resync_running else None
            return round(max(0.0, self.next_attempt - time.monotonic()), 3)

    def resync_started(self) -> None:
        """The writer starts this table's full sync now."""
        with self.lock:
            self.resync_started_at = time.monotonic()
            self.resyncs_started += 1

    def mark_gap(self, generation: int, reason: str) -> None:
        """The feed lost records for this table: stop tailing it and queue its resync (once per generation)."""
        with self.lock:
            if self.generation != generation:
                return
            self.tailer = None
            self._count_gap(reason)
            self.state = "resync_pending"
        log.warning("gap_detected", table=self.spec.name, reason=reason)
        self.queue_resync(f"gap: {reason}", gap=True)

    def gap_at_boot(self, reason: str) -> None:
        """The checkpoints this table would resume from are past what its feed still holds."""
        with self.lock:
            self._count_gap(reason)
        log.warning("gap_detected", table=self.spec.name, reason=reason)

    def _count_gap(self, reason: str) -> None:
        self.gaps += 1
        self.last_gap_reason = reason
