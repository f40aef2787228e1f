"""A table's state changes through named transitions: each one's effect on the fields the writer and poller read."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import cast

from seo_sync.errors import SeoSyncError
from seo_sync.schema import BUSINESSES
from seo_sync.sync.table_state import TableState
from seo_sync.sync.tailer import TableTailer


def fake_tailer(generation: int) -> TableTailer:
    """A stand-in tailer carrying only what the transitions read (its generation, whether it is idle)."""
    return cast(TableTailer, SimpleNamespace(generation=generation, idle=False))


def test_going_live_gives_the_tailer_a_new_generation_and_a_full_sync_can_drop_it():
    """to_streaming starts a new generation; start_full_sync with drop_tailer ends it (its batches go stale)."""
    rt = TableState(BUSINESSES)
    rt.to_streaming(fake_tailer, stream_arn="arn:1", rows=3, last_full_sync=10.0)
    assert rt.tailer is not None and rt.tailer.generation == rt.generation == 1
    assert (rt.state, rt.started, rt.rows, rt.stream_arn) == ("streaming", True, 3, "arn:1")
    rt.start_full_sync(drop_tailer=False)
    assert rt.state == "syncing" and rt.tailer is not None and rt.generation == 1
    rt.start_full_sync(drop_tailer=True)
    assert rt.tailer is None and rt.generation == 2


def test_a_clean_poll_ends_an_error_of_its_own_generation_only():
    """polled recovers a table in error when the tailer is the current one, not a tailer left from before."""
    rt = TableState(BUSINESSES)
    rt.to_streaming(fake_tailer, stream_arn="arn:1", rows=0, last_full_sync=None)
    old = rt.tailer
    assert old is not None
    rt.record_error(SeoSyncError("throttled"), "tail", max_backoff=1.0)
    rt.to_streaming(fake_tailer, stream_arn="arn:1", rows=0, last_full_sync=None, fresh=False)
    rt.record_error(SeoSyncError("throttled"), "tail", max_backoff=1.0)
    assert not rt.polled(old) and rt.state == "error"
    assert rt.tailer is not None and rt.polled(rt.tailer)
    assert (rt.state, rt.error, rt.failures) == ("streaming", None, 0)


def test_a_due_resync_is_taken_once_and_a_failed_one_waits_its_backoff_keeping_the_gap():
    """take_due_resync hands a due resync over once; resync_again queues it again after the delay, still a gap."""
    rt = TableState(BUSINESSES)
    rt.queue_resync("gap: trimmed", gap=True)
    assert rt.take_due_resync(time.monotonic()) == ("gap: trimmed", True)
    assert rt.take_due_resync(time.monotonic()) is None and rt.resync_starts_in() == 0.0  # running
    rt.resync_again("gap: trimmed", gap=False, delay=60.0)
    rt.resync_finished()
    assert rt.resync_pending and rt.resync_is_gap
    assert rt.take_due_resync(time.monotonic()) is None
    assert rt.take_due_resync(time.monotonic() + 61) == ("gap: trimmed", True)
