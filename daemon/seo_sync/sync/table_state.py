"""What the engine knows about one table, shared by the writer thread and that table's poller."""

from __future__ import annotations

import threading
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
    failures: int = 0
    next_attempt: float = 0.0
    dirty: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, now: float) -> dict[str, Any]:
        """This table's part of the engine snapshot (JSON-able); call with `lock` held."""
        lag = 0.0 if self.idle or self.last_created is None else max(0.0, now - self.last_created)
        return {
            "rows": self.rows, "last_full_sync": self.last_full_sync, "stream_arn": self.stream_arn,
            "shards": len(self.tailer.shards.cursors) if self.tailer else 0, "last_sequence": self.last_sequence,
            "lag_seconds": round(lag, 3),
            "state": "resync_pending" if self.resync_pending and self.state == "streaming" else self.state,
            "error": self.error, "gaps": self.gaps, "last_gap_reason": self.last_gap_reason,
            "dead_letters": self.dead_letters, "skipped_stale": self.skipped_stale,
            "ttl_deletes": self.ttl_deletes, "records_applied": self.records_applied,
            "stalled_shards": self.tailer.stalled_shards() if self.tailer else 0,
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

    def queue_resync(self, reason: str, gap: bool) -> bool:
        """Ask for a full sync of this table; False if one was already pending (they coalesce)."""
        with self.lock:
            if self.resync_pending:
                self.resync_is_gap |= gap
                return False
            self.resync_pending, self.resync_reason, self.resync_is_gap = True, reason, gap
            self.next_attempt = 0.0
        log.info("resync_requested", table=self.spec.name, reason=reason, gap=gap)
        return True

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
