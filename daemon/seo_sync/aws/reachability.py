"""Whether DynamoDB answers, and which threads are waiting for it, seen from botocore's own events.

Two questions the service asks during an outage, answered without touching any call site:

- Is a thread that has not finished a loop for a while hung, or waiting for an AWS call? A call is
  bounded (connect and read timeouts, a fixed number of attempts, a capped backoff between them),
  so a thread inside one is alive until that bound has passed; only a call older than its bound
  (or a thread stuck elsewhere) makes it stale for the watchdog.
- Is DynamoDB reachable? Any HTTP answer, an error answer too, says it is. Attempts that ended
  without an answer (refused, reset, timed out) or that are still waiting, with no answer since the
  first of them began, say it is not; after `UNREACHABLE_AFTER` seconds of that the health says so,
  well before the first call gives up and a table reports its error.

`watch(session)` registers the handlers on a boto3 session before its clients are made (each client
copies the session's handlers). The state is per process: one daemon, one network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

UNREACHABLE_AFTER = 5.0  # seconds without an answer, while attempts are made, before DynamoDB counts as unreachable
HANDLER_ID = "seo_sync.reachability"


class Reachability:
    """Calls in flight per thread, and when DynamoDB last answered; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.call_bound = 60.0  # seconds one call may take at most, attempts and backoff included (see `watch`)
        self._lock = threading.Lock()
        self._calls: dict[str, list[float]] = {}  # thread name -> start of each call it is inside (nested: a stack)
        self._unanswered_since: float | None = None  # first attempt begun since the last answer
        self._last_answer: float | None = None
        self.answers = 0
        self.failed_attempts = 0

    # -- botocore's events ------------------------------------------------------------------------

    def call_started(self, **_: Any) -> None:
        """before-call: this thread waits on AWS from now, for at most `call_bound` seconds."""
        with self._lock:
            self._calls.setdefault(threading.current_thread().name, []).append(self.clock())

    def call_ended(self, **_: Any) -> None:
        """after-call / after-call-error: this thread's innermost call is over."""
        name = threading.current_thread().name
        with self._lock:
            stack = self._calls.get(name)
            if stack:
                stack.pop()
                if not stack:
                    del self._calls[name]

    def attempt_started(self, **_: Any) -> None:
        """before-send: one HTTP attempt begins."""
        with self._lock:
            if self._unanswered_since is None:
                self._unanswered_since = self.clock()

    def attempt_ended(self, response_dict: Any = None, **_: Any) -> None:
        """response-received: an HTTP answer (any status) or an attempt that got none."""
        with self._lock:
            if response_dict is not None:
                self.answers += 1
                self._last_answer = self.clock()
                self._unanswered_since = None
            else:
                self.failed_attempts += 1

    # -- what the service reads -------------------------------------------------------------------

    def waiting(self) -> dict[str, float]:
        """Threads inside an AWS call that is still within its bound -> now (they count as alive)."""
        now = self.clock()
        with self._lock:
            return {name: now for name, stack in self._calls.items() if stack and now - stack[0] <= self.call_bound}

    def unanswered_for(self) -> float:
        """Seconds since the first attempt that has had no answer since (0 when the last attempt was answered)."""
        with self._lock:
            since = self._unanswered_since
        return 0.0 if since is None else max(0.0, self.clock() - since)

    def reason(self) -> str | None:
        """A health reason while DynamoDB does not answer, else None."""
        silent = self.unanswered_for()
        if silent < UNREACHABLE_AFTER:
            return None
        return f"dynamodb unreachable: no answer for {silent:.0f}s ({self.failed_attempts} attempts failed so far)"

    def status(self) -> dict[str, Any]:
        """For the status document: reachable, seconds without an answer, counts, calls in flight."""
        silent = self.unanswered_for()
        now = self.clock()
        with self._lock:
            last = None if self._last_answer is None else round(now - self._last_answer, 3)
            in_flight = sum(len(s) for s in self._calls.values())
        return {"reachable": silent < UNREACHABLE_AFTER, "unanswered_seconds": round(silent, 3),
                "last_answer_age_seconds": last, "answers": self.answers, "failed_attempts": self.failed_attempts,
                "calls_in_flight": in_flight}


NETWORK = Reachability()


def watch(session: Any, call_bound: float | None = None) -> None:
    """Feed `NETWORK` from the clients this boto3 session makes from now on."""
    if call_bound is not None:
        NETWORK.call_bound = call_bound
    events = session.events
    events.register("before-call", NETWORK.call_started, unique_id=f"{HANDLER_ID}.call")
    events.register("after-call", NETWORK.call_ended, unique_id=f"{HANDLER_ID}.done")
    events.register("after-call-error", NETWORK.call_ended, unique_id=f"{HANDLER_ID}.failed")
    events.register("before-send", NETWORK.attempt_started, unique_id=f"{HANDLER_ID}.send")
    events.register("response-received", NETWORK.attempt_ended, unique_id=f"{HANDLER_ID}.received")
