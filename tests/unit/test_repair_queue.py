"""The repair queue: one entry per key, drained no faster than its rate, suspects told apart from known doubts."""

from __future__ import annotations

from seo_sync.sync.repair import SUSPECT, RepairQueue
from tests.support.clock import ManualClock


def test_reads_are_rate_limited_after_the_burst() -> None:
    """Burst 3 at 2 a second: 3 at once, then 2 per second of clock, never more."""
    clock = ManualClock()
    q = RepairQueue(rate=2.0, burst=3, clock=clock)
    for i in range(10):
        q.add("businesses", (f"b{i}",), "stream")
    assert len(q.take()) == 3 and q.take() == []
    clock.now += 1.0
    assert len(q.take()) == 2
    clock.now += 0.25
    assert q.take() == []
    assert q.pending() == 5


def test_a_key_is_queued_once_and_a_refresh_discards_it() -> None:
    """Adding a queued key again is a no-op; discard removes it without a read."""
    q = RepairQueue(rate=10.0, burst=10)
    assert q.add("keywords", ("b1", "k#en"), "stream") is True
    assert q.add("keywords", ("b1", "k#en"), "dead letter") is False
    q.discard("keywords", ("b1", "k#en"))
    assert q.pending() == 0 and q.status()["queued"] == 1


def test_anti_entropy_suspects_are_not_known_differences() -> None:
    """Health counts refused records and dead letters, not the rolling verify's unconfirmed suspects."""
    q = RepairQueue(rate=10.0, burst=10)
    q.add("businesses", ("a",), SUSPECT)
    q.add("businesses", ("b",), "stream")
    assert q.pending() == 2 and q.pending(known_only=True) == 1


def test_a_table_not_ready_keeps_its_keys_and_the_oldest_wait_is_told() -> None:
    """Keys of a table whose shadow is being built stay queued; the oldest known doubt's wait is reported."""
    q = RepairQueue(rate=10.0, burst=10)
    q.wall = lambda: 1000.0
    q.add("businesses", ("a",), "stream", since=900.0)
    q.add("keywords", ("b", "k#en"), "stream")
    q.add("businesses", ("c",), SUSPECT, since=100.0)
    assert [k for _, _, k in q.take(lambda table: table == "keywords")] == [("b", "k#en")]
    assert q.pending() == 2 and q.oldest_age() == 100.0 and q.status()["oldest_seconds"] == 100.0


def test_a_recorded_doubt_is_not_queued_again_while_its_read_is_in_flight() -> None:
    """The writer reloads the recorded doubts every second; a key taken for a read and not yet applied
    stays counted once, while a new doubt the feed finds meanwhile is queued for another read."""
    q = RepairQueue(rate=10.0, burst=10)
    q.add("businesses", ("b1",), "dead letter", recorded=True)
    q.add("businesses", ("b2",), "dead letter", recorded=True)
    assert len(q.take()) == 2
    assert q.add("businesses", ("b1",), "dead letter", recorded=True) is False
    assert q.add("businesses", ("b2",), "stream") is True
    assert q.pending() == 1 and q.status()["by_reason"] == {"dead letter": 2, "stream": 1}
    q.count_read(changed=True, table="businesses", key=("b1",))
    assert q.add("businesses", ("b1",), "dead letter", recorded=True) is True


def test_an_answer_held_back_is_queued_again_without_counting_it_twice() -> None:
    """A read put back (DynamoDB away) or an answer whose table is being rebuilt waits for a later read;
    neither is a new doubt, and once back in the queue a reload does not add it again."""
    q = RepairQueue(rate=10.0, burst=10)
    q.add("businesses", ("b1",), "stream")
    q.add("businesses", ("b2",), "stream")
    q.take()
    q.put_back("businesses", ("b1",), "stream")
    q.requeue("businesses", ("b2",), "stream")
    assert q.pending() == 2 and q.status()["queued"] == 2
    assert q.add("businesses", ("b1",), "stream", recorded=True) is False
