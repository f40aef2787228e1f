"""Budgets on what a socket command costs DynamoDB: a token bucket shared fairly between peers.

A peer is the uid on the other end of the socket. The bucket's rate and burst are split evenly
between the peers that asked within the last `window` seconds, so one client looping `refresh`
uses up its own share only: another peer still finds its part of the bucket. A bucket of the whole
rate and burst bounds all peers together, so the total stays within the configured rate whatever
the number of peers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

ACTIVE_WINDOW = 10.0  # seconds a peer counts as sharing the bucket after its last request


@dataclass
class _Share:
    tokens: float
    updated: float
    last_seen: float


class FairBucket:
    """A token bucket of `rate` per second and `burst` at once, split evenly between active peers."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 window: float = ACTIVE_WINDOW) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.window = window
        self._shares: dict[int, _Share] = {}
        self._total = _Share(tokens=burst, updated=clock(), last_seen=clock())  # the bound on all peers together
        self._lock = threading.Lock()
        self.served = 0
        self.refused = 0
        self.cost = 0.0

    def take(self, peer: int, cost: float = 1.0) -> float:
        """Take `cost` tokens for `peer`: 0.0 when granted, else the seconds to wait before asking again."""
        with self._lock:
            now = self.clock()
            for uid in [u for u, s in self._shares.items() if now - s.last_seen > self.window and u != peer]:
                del self._shares[uid]
            share = self._shares.get(peer)
            peers = len(self._shares) + (share is None)
            rate, burst = self.rate / peers, max(self.burst / peers, 1.0)
            if share is None:
                share = self._shares[peer] = _Share(tokens=burst, updated=now, last_seen=now)
            share.tokens = min(burst, share.tokens + (now - share.updated) * rate)
            share.updated = share.last_seen = now
            total = self._total
            total.tokens = min(self.burst, total.tokens + (now - total.updated) * self.rate)
            total.updated = now
            # Float dust must not refuse a request that waited as it was told.
            if share.tokens >= cost - 1e-9 and total.tokens >= cost - 1e-9:
                share.tokens = max(0.0, share.tokens - cost)
                total.tokens = max(0.0, total.tokens - cost)
                self.served += 1
                self.cost += cost
                return 0.0
            self.refused += 1
            wait = max((cost - share.tokens) / rate, (cost - total.tokens) / self.rate)
            return max(0.001, math.ceil(wait * 1000) / 1000)

    def counts(self) -> dict[str, float]:
        """Requests served and refused, and the tokens (reads) the served ones took."""
        with self._lock:
            return {"served": self.served, "refused": self.refused, "reads": self.cost}
