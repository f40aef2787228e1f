"""A model of the unordered feed over time (hypothesis): DynamoDB's history of a few items, every
change delivered one or more times with any lateness from none to minutes, in arrival order and cut
into any batches, with a first boot and a resync in the middle, a crash and restart, marks expiring
and repair reads done late or at once: once the repairs drain, the cache equals DynamoDB."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache, Swap
from seo_sync.changes import to_change
from seo_sync.schema import BUSINESSES

START = 1_800_000_000.0  # epoch seconds of the first change
MAX_LATENESS = 1.0  # the feed's declared lateness: the capture reads this far past its Scan
MARK_LIFETIME = 120.0  # marks expire after two minutes here, so a record minutes late outlives them
SCAN_SECONDS = 0.3
OPS = ("write", "reset", "soft", "undelete", "hard", "recreate")
GAPS = (0.0002, 0.004, 0.3, 2.0, 20.0)  # seconds between two changes: below the precision up to a while
LATENESS = (0.0, 0.0, 0.01, 0.4, 3.0, 45.0, 400.0)  # seconds from a change's creation to its arrival


@dataclass
class Dynamo:
    """Items over time: each change is (creation time, key, item or None)."""

    changes: list[tuple[float, str, dict[str, Any] | None]] = field(default_factory=list)

    def at(self, t: float) -> dict[str, dict[str, Any] | None]:
        """Every key's item as a read at `t` sees it."""
        out: dict[str, dict[str, Any] | None] = {}
        for created, key, item in self.changes:
            if created <= t:
                out[key] = item
        return out


def history(ops: list[tuple[int, str, int]]) -> tuple[Dynamo, list[dict[str, Any]]]:
    """DynamoDB's changes for `ops` and the records it writes (REMOVEs carry the removed item's version)."""
    dyn = Dynamo()
    records: list[dict[str, Any]] = []
    items: dict[str, dict[str, Any] | None] = {}
    versions: dict[str, int] = {}
    t = START
    for n, (k, op, gap) in enumerate(ops):
        t += GAPS[gap]
        bid = f"b{k}"
        old = items.get(bid)
        if op in ("hard", "recreate") and old is not None:
            items[bid] = None
            dyn.changes.append((t, bid, None))
            records.append(_record("REMOVE", bid, t, old=old))
            if op == "hard":
                continue
            t += GAPS[0]
            old = None
        if op == "undelete" and (old is None or "_deleted" not in old):
            continue
        if op == "undelete":
            assert old is not None
            new = {a: v for a, v in old.items() if a != "_deleted"}
        else:
            versions[bid] = 1 if op in ("reset", "recreate") or bid not in versions else versions[bid] + 1
            new = {"business_id": {"S": bid}, "name": {"S": f"{op}{n}"}, "_version": {"N": str(versions[bid])}}
            if op == "soft":
                new["_deleted"] = {"BOOL": True}
        items[bid] = new
        dyn.changes.append((t, bid, new))
        records.append(_record("INSERT" if old is None else "MODIFY", bid, t, new=new, old=old))
    return dyn, records


def _record(event: str, bid: str, created: float, new: dict | None = None, old: dict | None = None) -> dict:
    dyn: dict[str, Any] = {"Keys": {"business_id": {"S": bid}}, "ApproximateCreationDateTime": created,
                           "SequenceNumber": str(round(created * 1_000_000))}
    if new is not None:
        dyn["NewImage"] = new
    if old is not None:
        dyn["OldImage"] = old
    return {"eventName": event, "dynamodb": dyn}


class Host:
    """One daemon's cache fed the arrivals, on the model's clock."""

    def __init__(self, path: Path, dyn: Dynamo) -> None:
        self.path, self.dyn = path, dyn
        self.now = START
        self.cache = self._open()

    def _open(self) -> Cache:
        cache = Cache.open(self.path)
        cache.clock = lambda: self.now
        cache.mark_lifetime = MARK_LIFETIME
        return cache

    def restart(self) -> None:
        """kill -9 between two transactions and start again on the same file."""
        self.cache.conn.close()
        self.cache = self._open()

    def apply(self, batch: list[dict[str, Any]]) -> None:
        self.cache.apply_batch(BUSINESSES, [to_change(BUSINESSES, r) for r in batch], None, ordered=False)
        self.cache.expire_tombstones(self.now - MARK_LIFETIME)

    def repair(self) -> None:
        """Every repair read the cache has queued, each a consistent read now."""
        truth = self.dyn.at(self.now)
        for table, key, *_ in self.cache.pending_repairs():
            assert table == "businesses"
            self.cache.apply_item(BUSINESSES, key, truth.get(key[0]), read_at=self.now)

    def full_sync(self, arrivals: list[tuple[float, dict[str, Any]]], at: float, offsets: list[float]) -> float:
        """A Scan from `at` (each item read within SCAN_SECONDS of it), the capture of every record that
        arrives from before the Scan to its end plus the lateness, then the swap; the swap's time."""
        self.cache.create_shadow(BUSINESSES)
        items = []
        for i, key in enumerate(sorted(self.dyn.at(at + SCAN_SECONDS).keys())):
            item = self.dyn.at(at + offsets[i % len(offsets)] * SCAN_SECONDS).get(key)
            if item is not None:
                items.append(item)
        self.cache.insert_scanned(BUSINESSES, items)
        start, ready = at - 2.0 - MAX_LATENESS, at + SCAN_SECONDS + 2.0 + MAX_LATENESS
        captured = [to_change(BUSINESSES, r) for arrived, r in arrivals if start <= arrived <= ready]
        for i in range(0, len(captured), 3):
            self.cache.apply_to_shadow(BUSINESSES, captured[i:i + 3], ordered=False, read_floor=at)
        self.now = max(self.now, ready)
        self.cache.publish([Swap(BUSINESSES, None, [], "model")])
        return ready

    def items(self) -> dict[str, dict[str, Any]]:
        return {it["business_id"]["S"]: it for it in Reader(self.cache.conn).items(BUSINESSES)}


ops_strategy = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(OPS), st.integers(0, len(GAPS) - 1)),
                        min_size=1, max_size=16)


@settings(max_examples=120, deadline=None)
@given(ops=ops_strategy, data=st.data())
def test_any_history_any_lateness_ends_equal_to_dynamodb(ops, data):
    """Resets, re-creations, soft deletes and un-deletes, REMOVEs with old versions, repeats, lateness up
    to minutes, batch cuts, a first boot and a resync mid-stream, a crash, marks expiring: equal at the end."""
    dyn, records = history(ops)
    if not records:
        return
    arrivals = []
    for r in records:
        for _ in range(data.draw(st.integers(1, 2), "copies")):
            late = LATENESS[data.draw(st.integers(0, len(LATENESS) - 1), "lateness")]
            arrivals.append((r["dynamodb"]["ApproximateCreationDateTime"] + late, r))
    arrivals.sort(key=lambda a: a[0])
    last = arrivals[-1][0]
    boot_at = data.draw(st.floats(START - 5, last + 1), "first boot")
    resync_at = data.draw(st.none() | st.floats(boot_at + 10, last + 50), "resync")
    crash_after = data.draw(st.none() | st.integers(0, len(arrivals)), "crash")
    cuts = set(data.draw(st.lists(st.integers(0, len(arrivals)), max_size=6), "cuts"))
    repair_late = data.draw(st.lists(st.booleans(), min_size=len(arrivals) + 1, max_size=len(arrivals) + 1), "late")
    offsets = data.draw(st.lists(st.floats(0, 1), min_size=1, max_size=3), "scan offsets")
    tmp = Path(tempfile.mkdtemp(prefix="timeline-"))
    host = Host(tmp / "cache.db", dyn)
    try:
        host.now = boot_at
        synced_to = host.full_sync(arrivals, boot_at, offsets)
        batch: list[dict[str, Any]] = []
        for i, (arrived, r) in enumerate(arrivals):
            if resync_at is not None and arrived > resync_at:
                host.now = max(host.now, resync_at)
                if batch:
                    host.apply(batch)
                    batch = []
                synced_to = host.full_sync(arrivals, resync_at, offsets)
                resync_at = None
            if arrived <= synced_to:  # before the capture's positions (the Scan saw it) or captured
                continue
            host.now = max(host.now, arrived)
            batch.append(r)
            if i in cuts or i == len(arrivals) - 1:
                host.apply(batch)
                batch = []
                if not repair_late[i]:
                    host.repair()
            if crash_after == i:
                host.restart()
        if batch:
            host.apply(batch)
        host.now = max(host.now, last) + 1.0
        host.repair()
        want = {k: v for k, v in dyn.at(host.now).items() if v is not None and "_deleted" not in v}
        assert host.items() == want
        assert not host.cache.pending_repairs()
    finally:
        host.cache.close()
        shutil.rmtree(tmp, ignore_errors=True)
