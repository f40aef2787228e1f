"""What the socket commands that cost DynamoDB may spend: `refresh` and `refresh-business`.

Each has a token bucket (control/budget.py) shared fairly between the peers asking; a request over
budget raises OverBudget, which the socket answers as `{"ok": false, "kind": "rate_limited",
"retry_after": s}`. `refresh-business` (the write path's `sync-from-dynamo BUSINESS`) has its own
allowance, so a flood of `refresh` never slows an operator's business sync, and it costs one Query
a table instead of one GetItem a key. Full syncs have their own floor (`min_resync_interval`, kept
by each table's state); the counts of both are in `status` and `metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from seo_sync.config import ControlSettings
from seo_sync.control.budget import FairBucket
from seo_sync.control.protocol import current_peer
from seo_sync.errors import OverBudget

UNKNOWN_PEER = -1  # requests not from the socket (none today) share one peer's part


class CommandBudgets:
    """The buckets of the commands that read DynamoDB, and what they served and refused."""

    def __init__(self, settings: ControlSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.buckets = {
            "refresh": FairBucket(settings.refresh_reads_per_second, settings.refresh_burst, clock=clock),
            "refresh-business": FairBucket(settings.business_refresh_reads_per_second,
                                           settings.business_refresh_burst, clock=clock),
        }

    def charge(self, command: str, reads: float = 1.0) -> None:
        """Take `reads` from `command`'s bucket for the asking peer, or raise OverBudget."""
        bucket = self.buckets[command]
        peer = current_peer()
        wait = bucket.take(UNKNOWN_PEER if peer is None else peer, reads)
        if wait:
            raise OverBudget(f"{command} over budget ({bucket.rate:g} reads/s, burst {bucket.burst:g}, shared "
                             f"between the peers asking); retry after {wait:g}s",
                             hint="space the requests out; the change stream keeps the cache fresh by itself",
                             retry_after=wait)

    def status(self) -> dict[str, Any]:
        """Per command: requests served and refused (rate_limited), and the DynamoDB reads they caused."""
        return {name: bucket.counts() for name, bucket in self.buckets.items()}
