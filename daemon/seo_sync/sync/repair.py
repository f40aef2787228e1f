"""Repair reads: keys whose cache state is in doubt, read again from DynamoDB and applied as the truth.

A key lands here when a record was refused as older than a state read directly, when the order of
its records is in doubt, when one of its records became a dead letter, and when anti-entropy found
the cache and a Scan of DynamoDB disagreeing. The repair thread drains the queue at a bounded rate
(a token bucket: `rate` reads a second, bursts of `burst`): one consistent GetItem per key, whose
answer the writer thread applies at its next turn with `Cache.apply_item`, which writes it, marks
the key as read at the answer's Date (DynamoDB's clock, never this host's) and resolves the key's
dead letters; an "absent" answer is read a second time before it is believed. A failed read puts
the key back for a later turn. The reads are not sent by the writer: during an outage each one
waits for its timeouts, and the writer keeps applying batches and jobs meanwhile.

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from seo_sync.aws.tables import Source
from seo_sync.backoff import backoff_delay
from seo_sync.cache.writer import Cache
from seo_sync.errors import SeoSyncError
from seo_sync.schema import TableSpec
from seo_sync.sync.poller import rest
from seo_sync.threads import DeathReport, ServiceThread

log = structlog.get_logger()
Key = tuple[str, str, tuple[str, ...]]  # (table, reason, key)
SUSPECT = "anti-entropy"  # the reason of a difference the rolling verify found
IDLE_WAIT = 0.05  # seconds between looks at the queue (the rate refills the bucket meanwhile)
BACKOFF_CAP = 10.0  # seconds at most between two tries while DynamoDB fails: the repairs resume soon after


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
        self.wall: Callable[[], float] = time.time
        self._pending: dict[tuple[str, tuple[str, ...]], str] = {}
        self._since: dict[tuple[str, tuple[str, ...]], float] = {}  # epoch seconds each key was first queued
        # Keys taken for a read whose answer is not applied yet: the answer resolves every doubt the
        # cache recorded for the key, so reloading those records meanwhile must not queue it twice.
        self._in_flight: set[tuple[str, tuple[str, ...]]] = set()
        self._tokens = float(self.burst)
        self._refilled = clock()
        self._lock = threading.Lock()

    def add(self, table: str, key: tuple[str, ...], reason: str, since: float | None = None,
            recorded: bool = False) -> bool:
        """Queue one key (False if it was already queued); `since`: when it was found (default now).
        `recorded`: the doubt comes from the cache's own record of it, which a read in flight for the
        key resolves when applied; such a key is not queued again (a new doubt found by the feed is)."""
        with self._lock:
            if (table, key) in self._pending or (recorded and (table, key) in self._in_flight):
                return False
            self._pending[(table, key)] = reason
            self._since.setdefault((table, key), self.wall() if since is None else since)
            self.counts.queued += 1
            self.counts.by_reason[reason] = self.counts.by_reason.get(reason, 0) + 1
        return True

    def put_back(self, table: str, key: tuple[str, ...], reason: str) -> None:
        """A read that failed: the key waits for a later turn (counted once, as failed)."""
        self.requeue(table, key, reason)
        with self._lock:
            self.counts.failed += 1

    def requeue(self, table: str, key: tuple[str, ...], reason: str) -> None:
        """An answer that could not be applied yet (its table is being rebuilt): the key waits for a
        later read, keeping its age, counted once as when it was first queued."""
        with self._lock:
            self._in_flight.discard((table, key))
            self._pending.setdefault((table, key), reason)

    def count_read(self, changed: bool, table: str = "", key: tuple[str, ...] = (), in_flight: bool = False) -> None:
        """One repair read applied (for `table`, `key`; `in_flight`: a suspect the feed had already put right)."""
        with self._lock:
            self._in_flight.discard((table, key))
            if (table, key) not in self._pending:
                self._since.pop((table, key), None)
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
                self._in_flight.add(k)
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
                    "failed": c.failed, "in_flight": c.in_flight, "by_reason": dict(c.by_reason),
                    "oldest_seconds": oldest}


@dataclass(frozen=True)
class RepairAnswer:
    """DynamoDB's answer for one repair read, waiting for the writer to apply it."""

    table: str
    reason: str
    key: tuple[str, ...]
    item: Any
    read_at: float


class RepairReader:
    """The two halves of the repair reads: `read` sends the GetItems (on the repair thread, so the
    writer never waits on the network), `apply` writes their answers (on the writer thread)."""

    def __init__(self, source: Source, specs: dict[str, TableSpec], repairs: RepairQueue) -> None:
        self.source = source
        self.specs = specs
        self.repairs = repairs
        self._answers: deque[RepairAnswer] = deque()  # appended by one thread, popped by another: thread-safe
        # Keys taken from the queue and not yet answered, or answers popped and not yet applied: with
        # the queue and the answers, every repair read is counted somewhere until it is applied.
        self._busy = 0
        self._busy_lock = threading.Lock()

    def read(self, should_stop: Callable[[], bool] = lambda: False,
             ready: Callable[[str], bool] = lambda _table: True) -> tuple[int, SeoSyncError | None]:
        """The reads the rate allows now of the tables `ready` accepts: (how many were answered, the
        error that stopped them or None). A failed read puts its key and the rest of the turn's keys
        back for a later turn."""
        with self._busy_lock:
            taken = [t for t in self.repairs.take(ready) if t[0] in self.specs]
            self._busy += len(taken)
        try:
            return self._read(taken, should_stop)
        finally:
            with self._busy_lock:
                self._busy -= len(taken)

    def _read(self, taken: list[Key], should_stop: Callable[[], bool]) -> tuple[int, SeoSyncError | None]:
        for i, (table, reason, key) in enumerate(taken):
            if should_stop():
                error = None
            else:
                try:
                    # This thread does not see the cache, so an "absent" answer is always read twice.
                    read = self.source.read_item(self.specs[table], key, live=True)  # DynamoDB's clock
                except SeoSyncError as e:
                    error = e
                    log.warning("repair_read_failed", table=table, key=list(key), error=e.message[:200])
                else:
                    self._answers.append(RepairAnswer(table, reason, key, read.item, read.at))
                    continue
            for t, r, k in taken[i:]:  # DynamoDB is throttling or away (or we stop): the rest waits
                self.repairs.put_back(t, k, r)
            return i, error
        return len(taken), None

    def waiting(self) -> int:
        """Answers read and not yet applied."""
        return len(self._answers)

    def drained(self) -> bool:
        """No repair read pending, being sent, or answered and not yet applied."""
        with self._busy_lock:
            return self._busy == 0 and not self._answers and self.repairs.pending() == 0

    def apply(self, cache: Cache, ready: Callable[[str], bool] = lambda _table: True) -> int:
        """Apply the answers read so far, on the writer thread (no network here); how many were applied.
        An answer for a table `ready` no longer accepts (its shadow is being built) waits as a key."""
        done = 0
        while self._answers:
            with self._busy_lock:
                a = self._answers.popleft()
                self._busy += 1
            try:
                done += self._apply(cache, a, ready)
            finally:
                with self._busy_lock:
                    self._busy -= 1
        return done

    def _apply(self, cache: Cache, a: RepairAnswer, ready: Callable[[str], bool]) -> int:
        if not ready(a.table):
            self.repairs.requeue(a.table, a.key, a.reason)
            return 0
        spec = self.specs[a.table]
        before = cache.row(spec, a.key)
        cache.apply_item(spec, a.key, a.item, read_at=a.read_at)
        changed = cache.row(spec, a.key) != before
        self.repairs.count_read(changed, a.table, a.key, in_flight=a.reason == SUSPECT and not changed)
        log.info("repair_read", table=a.table, key=list(a.key), reason=a.reason, changed=changed)
        if a.reason == SUSPECT and changed:  # a real difference, not a record still on its way
            log.warning("anti_entropy_difference_repaired", table=a.table, key=list(a.key))
        return 1


class RepairThread(ServiceThread):
    """Sends the repair reads, so that an outage or a slow answer holds this thread and not the writer."""

    def __init__(self, reader: RepairReader, ready: Callable[[str], bool], stop_event: threading.Event,
                 progress: dict[str, float], max_backoff: float, on_death: DeathReport | None = None) -> None:
        super().__init__("repair-reads", stop_event, on_death)
        self.reader = reader
        self.ready = ready  # a table whose shadow is being built is not read for (the swap would undo it)
        self.progress = progress
        self.max_backoff = max_backoff

    def _mark(self) -> None:
        self.progress[self.name] = time.monotonic()

    def loop(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            self._mark()
            done, error = self.reader.read(self.stop_event.is_set, self.ready)
            if error is not None:
                failures += 1
                delay = backoff_delay(failures, base=1.0, cap=min(BACKOFF_CAP, self.max_backoff))
                rest(self.stop_event, delay, self._mark)
            else:
                failures = 0 if done else failures
                self.stop_event.wait(IDLE_WAIT)


def run_repairs(cache: Cache, source: Source, specs: dict[str, TableSpec], repairs: RepairQueue,
                ready: Callable[[str], bool] = lambda _table: True) -> int:
    """Read and apply in one go, on the calling thread (a writer driven step by step, as in tests)."""
    reader = RepairReader(source, specs, repairs)
    reader.read(ready=ready)
    return reader.apply(cache, ready)
