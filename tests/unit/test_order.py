"""Who is newer on the unordered (Kinesis) feed: DynamoDB's clock orders an item's changes, never `_version`."""

from __future__ import annotations

import pytest

from seo_sync.changes import Change
from seo_sync.order import READ, RECORD, Mark, collapse_unordered, settle

T = 1_800_000_000.0  # a record's creation time, epoch seconds


def remove(version: int | None, at: float, seq: str = "1") -> Change:
    return Change("delete", "businesses", ("b1",), seq, version=version, event="REMOVE", hard=True, created_at=at)


def put(version: int | None, at: float, name: str = "x", seq: str = "2") -> Change:
    return Change("upsert", "businesses", ("b1",), seq, item={"name": {"S": name}}, version=version, event="MODIFY",
                  created_at=at, row=(name, version))


@pytest.mark.parametrize("after", [0.02, 0.5, 1.0, 1.9])
def test_a_remove_carrying_an_old_version_never_undoes_a_read_that_saw_the_item_recreated(after):
    """REMOVE (old image `_version` 5) against a read `after` s later that found the item present at
    `_version` 1: within the clock bound the order is a doubt, never "apply"."""
    read = Mark(1, T + after, READ, True)
    assert settle(remove(5, T), read, same_state=False) == "repair"  # the unordered feed is the default


def test_a_higher_version_created_earlier_is_older():
    """A reset: `_version` 5 created before the applied `_version` 1 is older and skipped; a lower version created
    later is newer and applied."""
    applied = Mark(1, T + 0.010, RECORD, True)
    assert settle(put(5, T), applied, same_state=False, ordered=False) == "skip"
    assert settle(put(1, T + 0.020), Mark(5, T, RECORD, True), same_state=False, ordered=False) == "apply"


def test_a_remove_created_after_the_applied_record_applies_whatever_its_version():
    """A REMOVE carries the removed item's version, which says nothing about when it happened."""
    assert settle(remove(1, T + 0.5), Mark(7, T, RECORD, True), same_state=False, ordered=False) == "apply"
    assert settle(remove(9, T - 0.5), Mark(1, T, RECORD, False), same_state=False, ordered=False) == "skip"


def test_two_changes_within_the_timestamps_precision_are_a_doubt():
    """Two different changes stamped within a millisecond of each other: DynamoDB decides."""
    assert settle(put(2, T + 0.0004), Mark(1, T, RECORD, True), same_state=False, ordered=False) == "repair"
    assert settle(put(2, T + 0.0004), Mark(1, T, RECORD, True), same_state=True, ordered=False) == "skip"


def test_a_record_against_a_read_clearly_before_or_after_it():
    """Clearly after the read (beyond the clock bound): newer; clearly before it: the read saw it."""
    read = Mark(3, T, READ, True)
    assert settle(put(1, T + 5), read, same_state=False, ordered=False) == "apply"
    assert settle(put(9, T - 5), read, same_state=False, ordered=False) == "skip"
    assert settle(put(9, T + 0.5), read, same_state=False, ordered=False) == "repair"


def test_an_unmarked_record_older_than_the_floor_is_a_doubt():
    """No mark, created before what the table's marks cover (they expired, or the row came from a Scan): a doubt."""
    assert settle(put(2, T), None, same_state=False, ordered=False, floor=T + 10) == "repair"
    assert settle(put(2, T + 11), None, same_state=False, ordered=False, floor=T + 10) == "apply"
    assert settle(put(2, T), None, same_state=False, ordered=True, floor=T + 10) == "apply"


def test_the_ordered_feed_still_lets_a_higher_version_win_inside_the_window():
    """DynamoDB Streams: the shard's order follows, so a higher version inside the window applies (unchanged)."""
    assert settle(put(5, T), Mark(1, T + 0.5, READ, True), same_state=False, ordered=True) == "apply"


def test_a_batch_is_collapsed_by_creation_time_never_by_version():
    """Delete at v5 then re-create at v1, delivered backwards in one batch: the re-creation wins, no doubt."""
    chosen, doubts = collapse_unordered([put(1, T + 0.005, seq="2"), remove(5, T, seq="1")])
    assert [c.kind for c in chosen] == ["upsert"] and doubts == set()


def test_a_batch_with_two_different_changes_in_one_millisecond_is_a_doubt():
    """Two changes of one key stamped within the precision: the key is in doubt."""
    _, doubts = collapse_unordered([put(1, T + 0.0002, "a", seq="2"), put(2, T, "b", seq="1")])
    assert doubts == {("b1",)}
