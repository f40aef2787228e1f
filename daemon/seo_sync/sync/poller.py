"""The poller thread of one table: steps its tailer and hands each batch to the writer thread.

The poller never touches the cache. It waits for a tailer of the table's current generation (the
writer installs one after the table's boot or full sync), polls the shards that are due, and puts
the batches on the writer's bounded queue; a full queue makes it wait, so a slow disk slows the
reading instead of filling memory. Between two polls it waits on the tailer, which wakes it as
soon as a feed that pushes (Kinesis enhanced fan-out) has received records.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog

from seo_sync.errors import SeoSyncError, SourceError, StreamGone
from seo_sync.sync.table_state import TableState
from seo_sync.sync.tailer import Batch
from seo_sync.threads import DeathReport, ServiceThread

log = structlog.get_logger()
IDLE_WAIT = 0.1  # seconds between looks while the table has no tailer yet, and between put attempts
MAX_WAIT = 0.5  # seconds a poller sleeps at most, so a stop or a new generation is seen soon


def rest(stop_event: threading.Event, seconds: float, mark: Callable[[], None],
         clock: Callable[[], float] = time.monotonic) -> bool:
    """Wait `seconds` (a backoff after an error) marking progress at least every second: a thread that
    waits on purpose is not hung, however long the outage's backoff grows. True when stopping."""
    deadline = clock() + seconds
    while True:
        mark()
        left = deadline - clock()
        if left <= 0:
            return stop_event.is_set()
        if stop_event.wait(min(1.0, left)):
            return True


class PollerThread(ServiceThread):
    """Reads one table's change feed on its own thread."""

    def __init__(self, table: TableState, batches: queue.Queue[Batch], stop_event: threading.Event,
                 progress: dict[str, float], max_backoff: float, on_death: DeathReport | None = None) -> None:
        super().__init__(f"poller-{table.spec.name}", stop_event, on_death)
        self.table = table
        self.batches = batches
        self.progress = progress
        self.max_backoff = max_backoff

    def loop(self) -> None:
        rt = self.table
        while not self.stop_event.is_set():
            self.progress[self.name] = time.monotonic()
            tailer = rt.tailer
            if tailer is None or tailer.generation != rt.generation:
                self.stop_event.wait(IDLE_WAIT)
                continue
            try:
                for b in tailer.step():
                    if not self._put(b):
                        return
                if rt.polled(tailer):
                    log.info("table_recovered", table=rt.spec.name)
                tailer.wait(self.stop_event, MAX_WAIT)
            except StreamGone as e:
                rt.mark_gap(tailer.generation, e.message)
            except SourceError as e:
                rest(self.stop_event, rt.record_error(e, "tail", self.max_backoff), self._mark)
            except Exception:
                # A bug in one table's tailing must not end the thread: it is logged with its
                # traceback and retried with backoff, and the table shows the error in status.
                log.exception("poller_failed", table=rt.spec.name)
                rest(self.stop_event, rt.record_error(SeoSyncError("internal error in the poller"), "tail",
                                                      self.max_backoff), self._mark)

    def _mark(self) -> None:
        self.progress[self.name] = time.monotonic()

    def _put(self, b: Batch) -> bool:
        """Hand one batch to the writer; False when stopping first."""
        while not self.stop_event.is_set():
            try:
                self.batches.put(b, timeout=IDLE_WAIT)
                return True
            except queue.Full:
                self.progress[self.name] = time.monotonic()  # waiting on the writer is not a hang
        return False
