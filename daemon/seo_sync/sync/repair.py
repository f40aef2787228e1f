"""Repair reads: keys whose cache state is in doubt, read again from DynamoDB and applied as the truth.

A key lands here when a record was refused as older than a state read directly, when the order of
its records is in doubt, when one of its records became a dead letter, and when anti-entropy found
the cache and a Scan of DynamoDB disagreeing. The writer thread drains the queue at a bounded rate
(a token bucket: `rate` reads a second, bursts of `burst`): one consistent GetItem per key, applied
with `Cache.apply_item`, which writes the answer, marks the key as read at the time the request
was sent and resolves the key's dead letters. A failed read puts the key back for a later turn.

The queue holds each key once, whatever number of reasons it has, and lives in memory: what a
crash loses is found again by anti-entropy, and unresolved dead letters are queued again at boot.
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
    in_flight: int = 0  # anti-entropy suspects the feed had already put right when their read came
    by_reason: dict[str, int] = field(default_factory=dict)


class RepairQueue:
    """Keys to read again, drained at a bounded rate; thread-safe (anti-entropy adds from another thread)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.counts = RepairCounts()
        self._pending: dict[tuple[str, tuple[str, ...]], str] = {}
        self._tokens = float(self.burst)
        self._refilled = clock()
        self._lock = threading.Lock()

    def add(self, table: str, key: tuple[str, ...], reason: str) -> bool:
        """Queue one key (False if it was already queued)."""
        with self._lock:
            if (table, key) in self._pending:
                return False
            self._pending[(table, key)] = reason
            self.counts.queued += 1
            self.counts.by_reason[reason] = self.counts.by_reason.get(reason, 0) + 1
        return True

    def put_back(self, table: str, key: tuple[str, ...], reason: str) -> None:
        """A read that failed: the key waits for a later turn (counted once, as failed)."""
        with self._lock:
            self._pending.setdefault((table, key), reason)
            self.counts.failed += 1

    def count_read(self, changed: bool, in_flight: bool = False) -> None:
        """One repair read applied (`in_flight`: a suspect the feed had already put right)."""
        with self._lock:
            self.counts.done += 1
            self.counts.changed += int(changed)
            self.counts.in_flight += int(in_flight)

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

    def take(self) -> list[Key]:
        """The keys the rate allows now (oldest first), removed from the queue."""
        with self._lock:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            n = min(int(self._tokens), len(self._pending))
            if n <= 0:
                return []
            self._tokens -= n
            taken = list(self._pending.items())[:n]
            for k, _ in taken:
                del self._pending[k]
        return [(table, reason, key) for (table, key), reason in taken]

    def status(self) -> dict[str, object]:
        """Counts and the number pending (JSON-able)."""
        with self._lock:
            c = self.counts
            return {"pending": len(self._pending), "queued": c.queued, "done": c.done, "changed": c.changed,
                    "failed": c.failed, "in_flight": c.in_flight, "by_reason": dict(c.by_reason)}


def run_repairs(cache: Cache, source: Source, specs: dict[str, TableSpec], repairs: RepairQueue,
                wall: Callable[[], float] = time.time) -> int:
    """Do the repair reads the rate allows now, on the writer thread; returns how many were done."""
    done = 0
    for table, reason, key in repairs.take():
        spec = specs.get(table)
        if spec is None:
            continue
        before = cache.row(spec, key)
        read_at = wall()
        try:
            item = source.get_item(spec, key, consistent=True)
        except SeoSyncError as e:
            repairs.put_back(table, key, reason)
            log.warning("repair_read_failed", table=table, key=list(key), error=e.message[:200])
            break  # DynamoDB is throttling or away: the rest waits for the next turn
        cache.apply_item(spec, key, item, read_at=read_at)
        changed = cache.row(spec, key) != before
        repairs.count_read(changed, in_flight=reason == SUSPECT and not changed)
        done += 1
        log.info("repair_read", table=table, key=list(key), reason=reason, changed=changed)
        if reason == SUSPECT and changed:  # a real difference, not a record still on its way
            log.warning("anti_entropy_difference_repaired", table=table, key=list(key))
    return done
