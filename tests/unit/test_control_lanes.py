"""The status socket's lanes: one peer uid never holds every worker, and cheap answers have their own."""

from __future__ import annotations

import threading

from seo_sync.control.lanes import Lanes, lane_of


def test_one_peer_cannot_take_every_work_worker() -> None:
    """uid 1000 sends 10 requests that block; uid 0's request still runs while they wait, and theirs run later."""
    lanes = Lanes(work_workers=4)
    release = threading.Event()
    started: list[int] = []
    lock = threading.Lock()
    other_ran = threading.Event()

    def blocking(n: int) -> None:
        with lock:
            started.append(n)
        release.wait(10)

    try:
        for n in range(10):
            lanes.submit("work", 1000, lambda n=n: blocking(n), lambda _f: None, lambda: None)
        lanes.submit("work", 0, other_ran.set, lambda _f: None, lambda: None)
        assert other_ran.wait(10), "the other peer's request waited behind the flooder"
        assert len(started) <= 2 and lanes.waiting() == 8  # the flooder holds its half, the rest wait their turn
        release.set()
        done = threading.Event()
        for _ in range(200):
            lanes.pump()
            if len(started) == 10:
                done.set()
                break
            done.wait(0.05)
        assert len(started) == 10 and lanes.waiting() == 0
    finally:
        release.set()
        lanes.shutdown()


def test_cheap_and_silent_requests_have_their_own_lanes() -> None:
    """health/status/metrics go to the fast lane, commands to work, a silent client to idle."""
    assert lane_of(b"health", silent=False) == "fast"
    assert lane_of(b"STATUS", silent=False) == "fast"
    assert lane_of(b"refresh keywords []", silent=False) == "work"
    assert lane_of(b"", silent=True) == "idle"
    assert lane_of(b"", silent=False) == "fast"  # EOF without a line: status, answered at once
