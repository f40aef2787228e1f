"""Readers never fail on the writer's life cycle (docs/reader-contract.md).

Two readers run as another uid in the cache's group, without write access to the data directory,
and read through examples/reader.py without pause — a fresh connection for every read, since
opening is where a missing -wal/-shm bites, and one long-lived connection — while the writer (the
daemon stand-in of reader_procs) is started, writes, resyncs a table and is stopped or killed,
again and again. Not one read may fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.reader_procs import (
    CACHE_GID,
    READER_UID,
    READS_PER_PHASE,
    Readers,
    Writer,
    data_dir,
    read_counts,
    run_as,
)

pytestmark = [
    pytest.mark.nonroot,
    pytest.mark.timeout(240),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to other uids needs root (run this module as root)"),
]
CYCLES = 40  # each: start, write, resync, then a clean stop (even) or SIGKILL (odd): 20 of each


@pytest.fixture
def db() -> Iterator[Path]:
    """The cache path in a data directory laid out as the unit does it."""
    with data_dir() as path:
        yield path


def test_group_readers_see_no_error_through_starts_stops_kills_and_resyncs(db):
    """Across 40 starts, 40 resyncs, 20 clean stops and 20 SIGKILLs, three group readers see zero errors."""
    writer = Writer(db)
    writer.command("write 3")
    readers = Readers(db, 3)
    try:
        for cycle in range(CYCLES):
            if cycle:
                writer = Writer(db)
            readers.wait_for_reads(f"after start {cycle}")
            writer.command("write 2")
            assert writer.command("resync")["businesses"] == 3 + 2 * (cycle + 1)
            readers.wait_for_reads(f"after resync {cycle}")
            if cycle % 2 == 0:
                writer.stop()
            else:
                writer.kill9()
            writer.close_pipes()
            readers.wait_for_reads(f"after stop {cycle}")
    finally:
        if writer.alive:
            writer.kill9()
        results = readers.finish()
    assert [r["errors"] for r in results] == [0, 0, 0], [r["messages"] for r in results]
    assert all(r["reads"] >= READS_PER_PHASE * 3 * CYCLES for r in results)
    assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 3 + 2 * CYCLES
