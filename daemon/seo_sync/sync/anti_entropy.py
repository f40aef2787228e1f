"""Anti-entropy: a rolling verify of the cache against DynamoDB, one rate-limited Scan page at a time.

What no change record announces (a bug, a record the feed skipped, a hand edit of cache.db) is
found here. Each table is read once per period: every tick one Scan page of at most
items_per_second x tick items (eventually consistent: half the read cost), compared with the
cache on the writer thread (the only thread that reads the writer's connection). A key that
differs is a suspect; if its cache row has not moved a few seconds later (the feed did not bring
the change the Scan saw), it goes to the repair queue, whose consistent GetItem confirms the
difference and applies DynamoDB's answer. When a pass ends, the cache's keys that the Scan never
returned are suspects the same way (an item the cache holds that DynamoDB may no longer have).

The scheduler thread calls `step`; it only reads DynamoDB and posts work to the writer, never
writing the cache itself. A Scan page older than the cache (it is eventually consistent) costs one
repair read that finds nothing to change. Only whole pages are compared (aws/tables.py refuses a cut
one), and a burst of differences beyond BURST_DIFFERENCES is taken for a fault of the read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.writer import Cache
from seo_sync.config import VerifySettings
from seo_sync.errors import BadInput, SeoSyncError
from seo_sync.schema import TableSpec
from seo_sync.sync.repair import SUSPECT, RepairQueue

log = structlog.get_logger()
T = TypeVar("T")
Submit = Callable[[Callable[[Cache], T]], T]
# A difference may be only the feed's lag (the cache has not applied a change the Scan saw yet):
# a suspect is handed to the repair reads only if its row is still as compared this long after.
SETTLE_SECONDS = 3.0
# More differences than this in one page (or at a pass's end) say more about the read than about the
# cache: a page cut short, an answer from the wrong table. They are dropped and the pass starts over;
# differences the cache really has come back in the next pass, a few at a time.
BURST_DIFFERENCES = 50
Row = tuple[Any, ...] | None


@dataclass
class TablePass:
    """One table's place in its rolling verify."""

    pages: Iterator[list[codec.Item]] | None = None  # the Scan in progress (None between passes)
    seen: set[tuple[str, ...]] = field(default_factory=set)
    started: float = 0.0
    next_pass: float = 0.0
    items_checked: int = 0
    differences: int = 0
    bursts: int = 0  # pages (or pass ends) whose differences were taken for a fault of the read
    passes: int = 0
    last_pass_end: float | None = None
    suspects: dict[tuple[str, ...], tuple[Row, float]] = field(default_factory=dict)  # key -> (row, when)

    def status(self) -> dict[str, Any]:
        """JSON-able counts."""
        return {"items_checked": self.items_checked, "differences": self.differences, "passes": self.passes,
                "bursts": self.bursts,
                "in_pass": self.pages is not None, "last_pass_end": self.last_pass_end}


def key_of(spec: TableSpec, item: codec.Item) -> tuple[str, ...] | None:
    """The cache key of a scanned item; None when it has no valid key (the full sync dead-letters it)."""
    try:
        return spec.key_of_item(item)
    except BadInput:
        return None


def differing(cache: Cache, spec: TableSpec, items: list[codec.Item]) -> list[tuple[tuple[str, ...], Row]]:
    """(key, cache row) of scanned items the cache holds differently (runs on the writer thread)."""
    out = []
    for item in items:
        key = key_of(spec, item)
        if key is None:
            continue
        try:
            want = None if codec.is_deleted(item) else codec.row_values(spec, item)
        except codec.CodecError:
            continue  # the full sync's dead letter already says so
        held = cache.row(spec, key)
        if held != (None if want is None else tuple(want)):
            out.append((key, held))
    return out


def unchanged(cache: Cache, spec: TableSpec, suspects: dict[tuple[str, ...], Row]) -> list[tuple[str, ...]]:
    """The suspects whose cache row is still the one compared (runs on the writer thread)."""
    return [key for key, row in suspects.items() if cache.row(spec, key) == row]


class RollingVerify:
    """Every table read once per period at a bounded rate; see the module docstring."""

    def __init__(self, source: Source, specs: dict[str, TableSpec], settings: VerifySettings, submit: Submit[Any],
                 repairs: RepairQueue, *, is_ready: Callable[[str], bool] = lambda _name: True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.is_ready = is_ready
        self.specs = specs
        self.settings = settings
        self.submit = submit
        self.repairs = repairs
        self.clock = clock
        self.passes = {name: TablePass() for name in specs}
        self.page_limit = max(1, int(settings.anti_entropy_items_per_second * settings.anti_entropy_tick_seconds))

    def step(self) -> int:
        """One Scan page for each table due; returns the differences queued."""
        period = self.settings.anti_entropy_period_hours * 3600
        if period <= 0:
            return 0
        found = 0
        for name, spec in self.specs.items():
            tp = self.passes[name]
            now = self.clock()
            if not self.is_ready(name):  # booting or rebuilt: a full sync is comparing already
                tp.pages = None
                continue
            if tp.pages is None:
                if now < tp.next_pass:
                    found += self._settle(spec, tp) if tp.suspects else 0
                    continue
                tp.pages = self.source.scan(spec, page_limit=self.page_limit, consistent=False)
                tp.seen, tp.started = set(), now
            try:
                found += self._page(spec, tp, period)
            except SeoSyncError as e:  # a throttled or failed page: this pass starts over next tick
                tp.pages = None
                log.warning("anti_entropy_page_failed", table=name, error=e.message[:200])
        return found

    def _page(self, spec: TableSpec, tp: TablePass, period: float) -> int:
        assert tp.pages is not None
        found = self._settle(spec, tp)
        page = next(tp.pages, None)
        now = self.clock()
        if page is not None:
            tp.items_checked += len(page)
            tp.seen.update(k for k in (key_of(spec, it) for it in page) if k is not None)
            diffs = self.submit(lambda c: differing(c, spec, page))
        else:  # the pass is over: what the cache holds that the Scan never returned
            seen = tp.seen
            diffs = self.submit(lambda c: [(k, c.row(spec, k)) for k in c.keys(spec) if k not in seen])
            if len(diffs) <= BURST_DIFFERENCES:
                tp.pages, tp.passes, tp.last_pass_end = None, tp.passes + 1, time.time()
                tp.next_pass = tp.started + period
                log.info("anti_entropy_pass", table=spec.name, items=len(seen), differences=tp.differences)
        if len(diffs) > BURST_DIFFERENCES:
            tp.pages, tp.bursts = None, tp.bursts + 1  # the pass starts over at the next tick
            log.warning("anti_entropy_burst", table=spec.name, count=len(diffs), limit=BURST_DIFFERENCES,
                        hint="taken for a fault of the read, not of the cache; the pass starts over")
            return found
        for key, row in diffs:
            tp.suspects.setdefault(key, (row, now))
        return found

    def _settle(self, spec: TableSpec, tp: TablePass) -> int:
        """Hand the suspects old enough, whose rows did not move since, to the repair reads."""
        now = self.clock()
        ripe = {k: row for k, (row, at) in tp.suspects.items() if now - at >= SETTLE_SECONDS}
        if not ripe:
            return 0
        for k in ripe:
            del tp.suspects[k]
        keys = self.submit(lambda c: unchanged(c, spec, ripe))
        for key in keys:
            self.repairs.add(spec.name, key, SUSPECT)
        if keys:
            tp.differences += len(keys)
            log.warning("anti_entropy_differences", table=spec.name, count=len(keys), keys=[list(k) for k in keys[:5]])
        return len(keys)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per table: items checked, differences, passes (for status and metrics)."""
        return {name: tp.status() for name, tp in self.passes.items()}
