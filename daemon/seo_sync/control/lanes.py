"""The status socket's worker lanes: cheap answers never wait behind slow ones or silent clients.

Three pools answer requests: `fast` for `health`, `status` and `metrics` (read-only, a few
milliseconds: a monitor's health check is answered whatever else happens), `work` for the commands
that wait on the writer or DynamoDB (`refresh`, `resync`, ...), and `idle` for clients that sent
nothing before their deadline (answered with `status`, computed at most once per `SILENT_MEMO`
seconds however many silent clients there are). In the `work` lane one peer uid holds at most
`per_uid` workers; its further requests wait their turn, so one peer never takes every worker.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

FAST_COMMANDS = frozenset({b"health", b"status", b"metrics", b""})
FAST_WORKERS = 4
IDLE_WORKERS = 1
SILENT_MEMO = 0.25  # seconds one computed answer serves every silent client


@dataclass
class _Waiting:
    uid: int
    fn: Callable[[], None]
    done: Callable[[Future[Any]], None]
    refuse: Callable[[], None]


def lane_of(line: bytes, silent: bool) -> str:
    """The lane a request goes to: idle (nothing sent by the deadline), fast or work."""
    if silent and not line.strip():
        return "idle"
    parts = line.split(None, 1)
    command = parts[0].lower() if parts else b""
    return "fast" if command in FAST_COMMANDS else "work"


class Lanes:
    """Three bounded pools, and the per-uid share of the work lane."""

    def __init__(self, work_workers: int, per_uid: int | None = None,
                 on_free: Callable[[], None] | None = None) -> None:
        self.pools = {
            "fast": ThreadPoolExecutor(FAST_WORKERS, thread_name_prefix="control-fast"),
            "work": ThreadPoolExecutor(work_workers, thread_name_prefix="control"),
            "idle": ThreadPoolExecutor(IDLE_WORKERS, thread_name_prefix="control-idle"),
        }
        self.per_uid = per_uid or max(1, work_workers // 2)
        self.on_free = on_free  # called when a work worker frees its peer's share (the selector wakes to pump)
        self._lock = threading.Lock()
        self._working: collections.Counter[int] = collections.Counter()
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._memo: tuple[float, str] | None = None
        self._memo_lock = threading.Lock()

    def submit(self, lane: str, uid: int, fn: Callable[[], None], done: Callable[[Future[Any]], None],
               refuse: Callable[[], None]) -> None:
        """Run fn in `lane` (now, or for the work lane once `uid` has a free share); RuntimeError when
        no thread can be started now; `refuse` answers a waiting request that never gets one."""
        if lane != "work":
            self.pools[lane].submit(fn).add_done_callback(done)
            return
        with self._lock:
            if self._working[uid] >= self.per_uid:
                self._waiting.append(_Waiting(uid, fn, done, refuse))
                return
            self._working[uid] += 1
        self._start_work(uid, fn, done)

    def _start_work(self, uid: int, fn: Callable[[], None], done: Callable[[Future[Any]], None]) -> None:
        def run() -> None:
            try:
                fn()
            finally:
                with self._lock:
                    self._working[uid] -= 1
                    if self._working[uid] <= 0:
                        del self._working[uid]
                    waiting = bool(self._waiting)
                if waiting and self.on_free is not None:
                    self.on_free()
        try:
            self.pools["work"].submit(run).add_done_callback(done)
        except RuntimeError:
            with self._lock:
                self._working[uid] -= 1
            raise

    def pump(self) -> None:
        """Start the waiting work requests whose peers have a free share now."""
        while True:
            with self._lock:
                found = next((w for w in self._waiting if self._working[w.uid] < self.per_uid), None)
                if found is None:
                    return
                self._waiting.remove(found)
                self._working[found.uid] += 1
            try:
                self._start_work(found.uid, found.fn, found.done)
            except RuntimeError:
                found.refuse()

    def waiting(self) -> int:
        """Work requests waiting for their peer's share."""
        with self._lock:
            return len(self._waiting)

    def silent_answer(self, compute: Callable[[], str]) -> str:
        """The answer for a silent client: computed at most once per SILENT_MEMO seconds."""
        with self._memo_lock:
            now = time.monotonic()
            if self._memo is None or now - self._memo[0] >= SILENT_MEMO:
                self._memo = (now, compute())
            return self._memo[1]

    def refuse_waiting(self) -> None:
        """Answer every waiting request with a refusal (at shutdown)."""
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for w in waiting:
            w.refuse()

    def shutdown(self) -> None:
        """Stop every pool without waiting; queued requests are cancelled."""
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
