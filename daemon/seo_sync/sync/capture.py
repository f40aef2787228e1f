"""A full sync's capture: the stream records read while the Scan runs and after it.

`CaptureThread` polls the stream from the positions taken before the Scan and appends every page to
a `Spill`, which keeps at most `threshold` records in memory and the rest in a temp file. After the
Scan, a catch-up reads on until the capture holds every change the Scan may have seen:

- `catch_up`, for a feed whose shards hold each item's changes in order (DynamoDB Streams): until
  each shard delivers a record created after the Scan ended.
- `catch_up_by_arrival`, for a feed whose records may come late and out of order (Kinesis): until
  each shard delivers a record that arrived after the Scan ended plus the feed's lateness, or is
  read to its tip once that moment has passed. Arrival order is a shard's order; creation order
  is not, so the creation time of the last record read says nothing about the ones still to come.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

from seo_sync.changes import arrival_of, created_at_of
from seo_sync.errors import FullSyncAborted
from seo_sync.sync.shards import ShardSet

_WAKE = 0.25


def _encode(o: Any) -> Any:
    if isinstance(o, bytes | bytearray):
        return {"\u0000b": base64.b64encode(bytes(o)).decode("ascii")}
    if isinstance(o, datetime):
        return {"\u0000t": o.timestamp()}
    raise TypeError(type(o).__name__)


def _decode(d: dict[str, Any]) -> Any:
    if len(d) == 1:
        if "\u0000b" in d:
            return base64.b64decode(d["\u0000b"])
        if "\u0000t" in d:
            return float(d["\u0000t"])
    return d


class Spill:
    """Captured (shard, record) pairs in arrival order; past `threshold` in memory, on disk."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.memory: list[tuple[str, dict[str, Any]]] = []
        self.file: IO[str] | None = None
        self.spilled = 0
        self.count = 0
        self.lock = threading.Lock()

    def extend(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Append one page's records."""
        with self.lock:
            self.memory += [(shard_id, r) for r in records]
            self.count += len(records)
            if len(self.memory) >= self.threshold:
                if self.file is None:
                    self.file = tempfile.TemporaryFile("w+", encoding="utf-8")
                for sid, r in self.memory:
                    self.file.write(json.dumps([sid, r], default=_encode, separators=(",", ":")) + "\n")
                self.spilled += len(self.memory)
                self.memory = []

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with self.lock:
            if self.file is not None:
                self.file.flush()
                self.file.seek(0)
                for line in self.file:
                    sid, r = json.loads(line, object_hook=_decode)
                    yield sid, r
            yield from self.memory

    def close(self) -> None:
        """Drop the temp file."""
        if self.file is not None:
            self.file.close()
            self.file = None


class CaptureThread(threading.Thread):
    """Polls the stream from the positions while the Scan runs."""

    def __init__(self, shards: ShardSet, spill: Spill) -> None:
        super().__init__(name=f"capture-{shards.table}", daemon=True)
        self.shards = shards
        self.spill = spill
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                now = self.shards.clock()
                if self.shards.describe_due(now):
                    self.shards.refresh()
                for c in self.shards.due(now):
                    page = self.shards.poll(c, now)
                    if page is not None and page.records:
                        self.spill.extend(page.shard_id, page.records)
                wait = self.shards.next_event() - self.shards.clock()
                self.halt.wait(max(0.01, min(wait, _WAKE)))
        except BaseException as e:
            self.error = e


def catch_up(shards: ShardSet, spill: Spill, should_stop: Callable[[], bool], tick: Callable[[], None],
              until: float) -> None:
    """Read every shard to its end or past `until`, following children, until a round brings nothing new.

    `until` (epoch seconds) lies after the Scan ended. A shard that delivered a record created after
    it has delivered every change the Scan could have missed (a shard is in write order); the rest
    is the tailer's, after the swap. Reading to the very end instead never finishes while a writer
    keeps writing faster than one GetRecords page an empty poll.
    """
    past: set[str] = set()
    while True:
        got = False
        for c in shards.readable():
            while not c.finished and c.shard_id not in past:
                if should_stop():
                    raise FullSyncAborted("full sync stopped")
                wait = c.next_due - shards.clock()
                if c.failures and wait > 0:
                    tick()
                    time.sleep(min(wait, _WAKE))
                    continue
                page = shards.poll(c)
                if page is None:
                    continue
                if not page.records:
                    break
                got = True
                spill.extend(page.shard_id, page.records)
                tick()  # a catch-up behind a busy stream reads page after page: live batches between them
                newest = created_at_of(page.records[-1])
                if newest is not None and newest > until:
                    past.add(c.shard_id)
        before = set(shards.cursors)
        if any(c.finished for c in shards.cursors.values()):
            shards.refresh()
        if not got and set(shards.cursors) == before:
            return


def catch_up_by_arrival(shards: ShardSet, spill: Spill, should_stop: Callable[[], bool], tick: Callable[[], None],
                        until: float, ready_at: float) -> None:
    """Read every shard, children included, until it delivers a record that arrived after `until`
    (epoch seconds on the stream's clock), or is read to its tip at or after `ready_at` (on
    `shards.clock`, a moment by which the stream's clock has passed `until`)."""
    done: set[str] = set()
    while True:
        if should_stop():
            raise FullSyncAborted("full sync stopped")
        now = shards.clock()
        if shards.describe_due(now):
            shards.refresh()
        open_ = [c for c in shards.cursors.values() if not c.finished and c.shard_id not in done]
        if not open_:
            return
        for c in shards.due(now):
            if c.shard_id in done:
                continue
            page = shards.poll(c, now)
            if page is None:
                continue
            if page.records:
                spill.extend(page.shard_id, page.records)
            arrived = arrival_of(page.records[-1]) if page.records else None
            # At the tip as of when the page was read, which for a page served again is a moment ago.
            if (arrived is not None and arrived > until) or (page.behind_ms == 0 and now - page.age >= ready_at):
                done.add(c.shard_id)
            if page.finished_now:
                shards.refresh()  # its children, read after it
        tick()
        wait = shards.next_event() - shards.clock()
        time.sleep(max(0.01, min(wait, _WAKE)))
