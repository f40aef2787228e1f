"""`catch_up_by_arrival`: when a full sync's capture on a feed with late records may stop reading a shard."""

from __future__ import annotations

from seo_sync.feed import Checkpoint
from seo_sync.sync.capture import Spill, catch_up_by_arrival
from seo_sync.sync.shards import Cursor, Page

CP = Checkpoint("businesses", "arn", "s", None, None, False, None, 0.0)
READY_AT = 100.0
UNTIL = 1_700_000_010.0


class ScriptedShards:
    """One shard whose polls answer the scripted pages, on a clock that moves a second a poll."""

    def __init__(self, pages: list[Page]) -> None:
        self.pages = pages
        self.now = READY_AT + 0.2
        self.cursors = {"s": Cursor("s", None)}
        self.polls = 0

    def clock(self) -> float:
        return self.now

    def describe_due(self, now: float) -> bool:
        return False

    def due(self, now: float) -> list[Cursor]:
        return list(self.cursors.values())

    def poll(self, c: Cursor, now: float) -> Page:
        self.polls += 1
        self.now += 1.0
        return self.pages.pop(0)

    def next_event(self) -> float:
        return self.now


def run(pages: list[Page]) -> ScriptedShards:
    shards = ScriptedShards(pages)
    catch_up_by_arrival(shards, Spill(100), lambda: False, lambda: None, UNTIL, READY_AT)  # type: ignore[arg-type]
    return shards


def record(arrived: float) -> dict:
    return {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "1"}, "kinesisArrival": arrived}


def test_a_tip_read_after_the_ready_moment_ends_the_shard():
    assert run([Page("s", [], CP, behind_ms=0, age=0.0)]).polls == 1


def test_a_tip_read_before_the_ready_moment_and_served_again_does_not():
    """A page read a moment before the stream's clock passed the mark, handed on again from memory, says
    nothing of what arrived since: the shard is read again."""
    assert run([Page("s", [], CP, behind_ms=0, age=0.5), Page("s", [], CP, behind_ms=0, age=0.0)]).polls == 2


def test_a_page_behind_the_tip_does_not_and_a_record_arrived_past_the_mark_does():
    pages = [Page("s", [record(UNTIL - 1)], CP, behind_ms=500), Page("s", [record(UNTIL + 0.5)], CP, behind_ms=800)]
    assert run(pages).polls == 2
