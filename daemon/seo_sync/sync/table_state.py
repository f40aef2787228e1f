"""What the engine knows about one table, shared between its writer and poller threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from seo_sync.schema import TableSpec
from seo_sync.sync.poller import TableTailer


@dataclass
class TableRuntime:
    """What the engine knows about one table (shared between threads under `lock`)."""

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
        }
