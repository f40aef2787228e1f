"""A worker backing off after an error keeps marking progress, so a long outage's backoff is no hang."""

from __future__ import annotations

import itertools

from seo_sync.sync.poller import rest


class FakeStop:
    """A stop event whose wait moves a fake clock instead of sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        self.now += timeout
        return False

    def is_set(self) -> bool:
        return False


def test_a_five_minute_backoff_marks_progress_every_second():
    """rest(300 s) waits in slices of at most a second and marks progress before each."""
    stop = FakeStop()
    marks: list[float] = []
    assert rest(stop, 300.0, lambda: marks.append(stop.now), clock=stop.clock) is False  # type: ignore[arg-type]
    assert stop.now >= 300.0 and max(stop.waits) <= 1.0
    assert max(b - a for a, b in itertools.pairwise(marks)) <= 1.0 and len(marks) >= 300
