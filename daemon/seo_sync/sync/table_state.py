"""What the engine knows about one table, shared by the writer thread and that table's poller."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from seo_sync.backoff import backoff_delay
from seo_sync.errors import SeoSyncError
from seo_sync.schema import TableSpec
from seo_sync.sync.tailer import TableTailer

log = structlog.get_logger()
ERROR_BACKOFF_BASE = 1.0  # seconds before a table's first retry after an error


@dataclass
class TableState:
    """One table's state (shared between threads under `lock`)."""

    spec: TableSpec
    state: str = "starting"
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
            self.gaps += 1
            self.last_gap_reason = reason
            self.state = "resync_pending"
        log.warning("gap_detected", table=self.spec.name, reason=reason)
        self.queue_resync(f"gap: {reason}", gap=True)
