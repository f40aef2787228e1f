"""The demo's DynamoDB kept serving after its one-shot sync, for a daemon you start and stop yourself.

`seo-sync demo --no-daemon --serve`: the sample data is loaded and synced once, then the embedded
DynamoDB keeps running (with the simulated writer, unless `--no-writer`) until Ctrl-C or
`--seconds`. A second developer runs `seo-sync run` in another shell against it, stops it, starts
it again, and the tables and their streams are still there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from seo_sync.aws.tables import Source
from seo_sync.demo.writer import SimulatedWriter

WRITE_EVERY = 2.0  # seconds between simulated platform writes, as in the live demo
TICK = 0.25  # how often the wait looks at the clock (Ctrl-C interrupts it at once anyway)


def serve_until_stopped(source: Source, seconds: float | None, writer: bool,
                        say: Callable[[str], None]) -> dict[str, Any]:
    """Keep the process (and so the embedded DynamoDB) alive until Ctrl-C or `seconds`; what the writer did."""
    simulated = SimulatedWriter(source)
    say("The DynamoDB keeps running (Ctrl-C stops it); start and stop your own `seo-sync run` against it."
        + ("" if writer else " No simulated writer: the data changes only when you write."))
    started = time.monotonic()
    next_write = started  # the first write at once: a daemon started now sees a change soon
    interrupted = False
    try:
        while seconds is None or time.monotonic() - started < seconds:
            if writer and time.monotonic() >= next_write:
                simulated.step()
                next_write = time.monotonic() + WRITE_EVERY
            time.sleep(TICK)
    except KeyboardInterrupt:
        interrupted = True
    stats = simulated.stats
    return {"served_seconds": round(time.monotonic() - started, 1), "interrupted": interrupted,
            "writer": {"edits": stats.edits, "new_keywords": stats.new_keywords,
                       "soft_deletes": stats.soft_deletes, "conflicts": stats.conflicts}}
