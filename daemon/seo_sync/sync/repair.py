"""Repair reads: keys whose cache state is in doubt, read again from DynamoDB and applied as the truth.

A key lands here when a record was refused as older than a state read directly, when the order of
its records is in doubt, when one of its records became a dead letter, and when anti-entropy found
the cache and a Scan of DynamoDB disagreeing. The writer thread drains the queue at a bounded rate
(a token bucket: `rate` reads a second, bursts of `burst`): one consistent GetItem per key, applied
with `Cache.apply_item`, which writes the answer, marks the key as read at the answer's Date
(DynamoDB's clock, never this host's) and resolves the key's dead letters; an "absent" answer for a
row the cache holds is read a second time before the row goes. A failed read puts the key back.

Every doubt found while applying records (live, a first boot's or a resync's captured records, a
dead letter) is written to `_sync_repairs` in the transaction that found it, and the writer loads
that table into this queue every second: whatever queued a key, its read is done while the writer
runs. A key of a table whose shadow is being built waits until the shadow is swapped in (a read
applied to the live table before the swap would be replaced by the shadow's row).

The queue holds each key once, whatever number of reasons it has, with the time it was first
queued (the table's time for a loaded key), so health can say how long the oldest has waited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from seo_sync.aws.tables import Source
from seo_sync.cache.writer import Cache
from seo_sync.errors import SeoSyncError
from seo_sync.schema import TableSpec

log = structlog.get_logger()
Key = tuple[str, str, tuple[str, ...]]  # (table, reason, key)
SUSPECT = "anti-entropy"  # the reason of a difference the rolling verify found


@dataclass
class RepairCounts:
    """What the repair reads did, for status and metrics."""

    queued: int = 0
    done: int = 0
    changed: int = 0  # reads whose answer differed from what the cache held: a difference repaired
    failed: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class RepairQueue:
    """Keys to read again, drained at a bounded rate; thread-safe (anti-entropy adds from another thread)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.counts = RepairCounts()
        self.wall: Callable[[], float] = time.time
        self._pending: dict[tuple[str, tuple[str, ...]], str] = {}
        self._since: dict[tuple[str, tuple[str, ...]], float] = {}  # epoch seconds each key was first queued
        self._tokens = float(self.burst)
        self._refilled = clock()
        self._lock = threading.Lock()

    def add(self, table: str, key: tuple[str, ...], reason: str, since: float | None = None) -> bool:
        """Queue one key (False if it was already queued); `since`: when it was found (default now)."""
        with self._lock:
            if (table, key) in self._pending:
                return False
            self._pending[(table, key)] = reason
            self._since.setdefault((table, key), self.wall() if since is None else since)
            self.counts.queued += 1
            self.counts.by_reason[reason] = self.counts.by_reason.get(reason, 0) + 1
        return True

    def put_back(self, table: str, key: tuple[str, ...], reason: str) -> None:
        """A read that failed: the key waits for a later turn (counted once, as failed)."""
        with self._lock:
            self._pending.setdefault((table, key), reason)
            self.counts.failed += 1

    def count_read(self, changed: bool, table: str = "", key: tuple[str, ...] = ()) -> None:
        """One repair read applied (for `table`, `key`)."""
        with self._lock:
            if (table, key) not in self._pending:
                self._since.pop((table, key), None)
            self.counts.done += 1
            self.counts.changed += int(changed)

    def pending(self, known_only: bool = False) -> int:
        """Keys waiting for their read; `known_only`: not counting anti-entropy's suspects, which only
        the read itself confirms (and repairs in the same step)."""
        with self._lock:
            if known_only:
                return sum(1 for reason in self._pending.values() if reason != SUSPECT)
            return len(self._pending)

    def discard(self, table: str, key: tuple[str, ...]) -> None:
        """DynamoDB's answer for this key was applied another way (`refresh`): no read needed."""
        with self._lock:
            self._pending.pop((table, key), None)
            self._since.pop((table, key), None)

    def take(self, ready: Callable[[str], bool] = lambda _table: True) -> list[Key]:
        """The keys the rate allows now (oldest first) of the tables `ready` accepts, removed from the
        queue (a key read and applied is forgotten by `count_read`; one put back keeps its age)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            n = min(int(self._tokens), len(self._pending))
            if n <= 0:
                return []
            taken = [(k, reason) for k, reason in self._pending.items() if ready(k[0])][:n]
            self._tokens -= len(taken)
            for k, _ in taken:
                del self._pending[k]
        return [(table, reason, key) for (table, key), reason in taken]

    def oldest_age(self) -> float:
        """Seconds the longest-waiting known doubt has waited (anti-entropy's suspects aside); 0 if none."""
        with self._lock:
            return self._oldest()

    def _oldest(self) -> float:  # the caller holds the lock
        known = [self._since[k] for k, reason in self._pending.items() if reason != SUSPECT and k in self._since]
        return max(0.0, self.wall() - min(known)) if known else 0.0

    def status(self) -> dict[str, object]:
        """Counts and the number pending (JSON-able)."""
        with self._lock:
            c = self.counts
            oldest = round(self._oldest(), 1)
            return {"pending": len(self._pending), "queued": c.queued, "done": c.done, "changed": c.changed,
                    "failed": c.failed, "by_reason": dict(c.by_reason), "oldest_seconds": oldest}


def run_repairs(cache: Cache, source: Source, specs: dict[str, TableSpec], repairs: RepairQueue,
                wall: Callable[[], float] = time.time, ready: Callable[[str], bool] = lambda _table: True) -> int:
    """Do the repair reads the rate allows now of the tables `ready` accepts, on the writer thread;
    returns how many were done."""
    done = 0
    for table, reason, key in repairs.take(ready):
        spec = specs.get(table)
        if spec is None:
            continue
        before = cache.row(spec, key)
        try:
            read = source.read_item(spec, key, live=before is not None)  # stamped by DynamoDB's clock
        except SeoSyncError as e:
            repairs.put_back(table, key, reason)
            log.warning("repair_read_failed", table=table, key=list(key), error=e.message[:200])
            break  # DynamoDB is throttling or away: the rest waits for the next turn
        cache.apply_item(spec, key, read.item, read_at=read.at)
        changed = cache.row(spec, key) != before
        repairs.count_read(changed, table, key)
        done += 1
        log.info("repair_read", table=table, key=list(key), reason=reason, changed=changed)
    return done
