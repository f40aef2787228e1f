"""A clock the test moves by hand, for the code that takes its clock as a callable."""

from __future__ import annotations


class ManualClock:
    """Answers `now` until the test moves it (`clock.now += 1.0`)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
