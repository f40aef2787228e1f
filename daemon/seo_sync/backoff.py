"""Exponential backoff with jitter: the one rule every retry in seo-sync waits by.

A retry waits `base * 2**(attempt - 1)` seconds, capped. With jitter the wait is drawn from its
upper half ("equal jitter"): callers that failed together (the shards of one stream after a
throttling storm, several writers after one conflict) spread out instead of retrying in lockstep,
while each still waits at least half the nominal delay, so the retry rate still falls off
exponentially.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: bool = True,
                  rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `attempt` (1 = the first retry)."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay * (0.5 + 0.5 * rng()) if jitter else delay
