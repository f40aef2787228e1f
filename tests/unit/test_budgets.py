"""Budgets on what socket commands cost DynamoDB: the fair token bucket, the resync floor, the thread bound."""

from __future__ import annotations

import time

import pytest

from seo_sync.config import TASKS_BUDGET, load_settings
from seo_sync.control.budget import FairBucket
from seo_sync.errors import ConfigError
from seo_sync.schema import BUSINESSES
from seo_sync.sync.table_state import TableState
from tests.support.clock import ManualClock


def test_bucket_serves_its_burst_then_refuses_with_the_wait() -> None:
    """A lone peer gets the burst at once; the next request is refused with the seconds until a token."""
    clock = ManualClock(1000.0)
    bucket = FairBucket(rate=20, burst=100, clock=clock)
    assert all(bucket.take(7) == 0.0 for _ in range(100))
    wait = bucket.take(7)
    assert 0.04 <= wait <= 0.06
    clock.now += wait
    assert bucket.take(7) == 0.0
    assert bucket.counts() == {"served": 101, "refused": 1, "reads": 101.0}


def test_one_flooding_peer_cannot_use_up_another_peers_share() -> None:
    """While uid 1000 loops, uid 0 still gets its half of the rate."""
    clock = ManualClock(1000.0)
    bucket = FairBucket(rate=20, burst=100, clock=clock)
    served = {1000: 0, 0: 0}
    for _ in range(1000):  # 10 s in steps of 10 ms; the flooder asks 10 times a step, the other once
        clock.now += 0.01
        served[1000] += sum(bucket.take(1000) == 0.0 for _ in range(10))
        served[0] += bucket.take(0) == 0.0
    assert served[0] >= 90  # about half of 20/s for 10 s, plus its part of the burst
    assert served[1000] + served[0] <= 20 * 10 + 100


def test_the_total_stays_within_the_rate_whatever_the_number_of_peers() -> None:
    """Forty peers looping for 15 s get no more than the rate times the time plus the burst."""
    clock = ManualClock(1000.0)
    bucket = FairBucket(rate=20, burst=100, clock=clock)
    served = 0
    for _ in range(1500):
        clock.now += 0.01
        served += sum(bucket.take(uid) == 0.0 for uid in range(40))
    assert served <= 20 * 15 + 100


def test_resyncs_inside_the_interval_coalesce_into_one_at_its_end() -> None:
    """After a full sync started, requests wait for the interval's end and join one pending run."""
    rt = TableState(BUSINESSES)
    assert rt.queue_resync("first", gap=False, min_interval=60)
    assert rt.resync_starts_in() == 0.0  # nothing started before: at once
    assert rt.take_due_resync(time.monotonic()) == ("first", False)
    rt.resync_started()
    rt.resync_finished()
    assert rt.queue_resync("again", gap=False, min_interval=60)
    assert 59 <= (rt.resync_starts_in() or 0) <= 60
    assert not any(rt.queue_resync("loop", gap=False, min_interval=60) for _ in range(74))
    assert rt.resyncs_coalesced == 75
    assert rt.next_attempt > time.monotonic() + 59


def test_a_gap_is_not_held_back_by_the_interval() -> None:
    """A gap in the feed resyncs at once, even right after another full sync started."""
    rt = TableState(BUSINESSES)
    rt.resync_started()
    rt.queue_resync("operator", gap=False, min_interval=60)
    rt.queue_resync("gap: trimmed", gap=True, min_interval=60)
    assert rt.resync_starts_in() == 0.0 and rt.resync_is_gap


def test_a_socket_pool_beyond_the_units_tasks_max_is_refused() -> None:
    """socket_max_clients = 64 would let the daemon start more threads than TasksMax=64: exit 78, named."""
    with pytest.raises(ConfigError, match="TasksMax") as e:
        load_settings(None, env={"SEO_SYNC_SERVICE__SOCKET_MAX_CLIENTS": "64"})
    assert e.value.exit_code == 78
    with pytest.raises(ConfigError, match="TasksMax"):
        load_settings(None, env={"SEO_SYNC_SERVICE__SOCKET_MAX_CLIENTS": "32",
                                 "SEO_SYNC_FULLSYNC__SCAN_SEGMENTS": "32"})
    assert load_settings(None, env={}).peak_threads() <= TASKS_BUDGET
    assert load_settings(None, env={"SEO_SYNC_SERVICE__SOCKET_MAX_CLIENTS": "24"}).peak_threads() <= TASKS_BUDGET
