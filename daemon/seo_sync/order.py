"""Who is newer: a change record against another record, or against a state read from DynamoDB.

Pure rules, no I/O. Two kinds of change feed reach the cache:

- An ordered feed (DynamoDB Streams): within one shard an item's records come in the order the
  item changed, so a later record is newer even when its `_version` is lower (a foreign writer
  reset it; the item was deleted and created again; `_deleted` was set and removed without a
  bump). Records are applied in that order with no version check at all.
- An unordered feed (Kinesis Data Streams for DynamoDB): records may arrive out of order and more
  than once. They are ordered by (`_version`, creation time in microseconds); a batch is collapsed
  per key by that order, never by position.

Either way a stream record may be older than a state read from DynamoDB directly (a `refresh`,
the write path's own cache write, a repair read), because the tail can lag behind the read. Such a
read leaves a mark (its time and version); a record against a mark is applied when it is clearly
newer, skipped when it is clearly older, and otherwise the daemon asks DynamoDB again: a repair read.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from seo_sync.changes import Change

# How far the host's clock and DynamoDB's may disagree, plus the precision of a record's creation
# time: real DynamoDB Streams gives ApproximateCreationDateTime in whole seconds (truncated), so a
# record stamped t happened in [t, t + 1).
CLOCK_SKEW = 1.0
STREAM_TIME_PRECISION = 1.0

Verdict = Literal["apply", "skip", "repair"]
READ = "read"  # the mark of a state read from DynamoDB directly
RECORD = "record"  # the mark of the last record applied from an unordered feed


class Mark(NamedTuple):
    """What the cache knows about the origin of one key's state (present or deleted)."""

    version: int | None
    at: float | None  # epoch seconds: the read's time, or the record's creation time
    origin: str  # READ or RECORD
    present: bool


def micros(t: float | None) -> int | None:
    """Epoch seconds as whole microseconds (the unit the order compares; None stays None)."""
    return None if t is None else round(t * 1_000_000)


def mark_of(c: Change) -> Mark:
    """The mark an applied record of an unordered feed leaves."""
    return Mark(c.version, c.created_at, RECORD, c.kind == "upsert")


def against_read(c: Change, mark: Mark, same_state: bool, skew: float = CLOCK_SKEW) -> Verdict:
    """A record (of either feed) against a state read from DynamoDB at `mark.at`.

    Clearly after the read: newer. Clearly before it: the read already saw it. In between the
    versions decide when both are integers and the record's is higher; a record that says exactly
    what the read said is harmless; anything else is a doubt for DynamoDB to settle.
    """
    t, read_at = c.created_at, mark.at
    if t is not None and read_at is not None:
        if t - skew > read_at:
            return "apply"
        if t + STREAM_TIME_PRECISION + skew < read_at:
            return "skip"
    if c.version is not None and mark.version is not None and c.version > mark.version:
        return "apply"
    return "apply" if same_state else "repair"


def against_record(c: Change, mark: Mark, same_state: bool) -> Verdict:
    """A record of an unordered feed against the last one applied for its key.

    Ordered by (`_version`, creation time). When the versions and the times disagree (a higher
    version created earlier: a reset, or a re-creation after a delete) the order is in doubt; so it
    is when only one side has a version, or on an exact tie of records that say different things.
    """
    t, m = micros(c.created_at), micros(mark.at)
    if c.version is not None and mark.version is not None and c.version != mark.version:
        newer = c.version > mark.version
        if t is not None and m is not None:
            if (t > m) != newer:
                return "repair"
            return "apply" if newer else "skip"  # the versions and the times agree
        return "apply" if newer else "repair"  # a lower version may be a reset
    if t is None or m is None:
        return "skip" if same_state else "repair"
    if (c.version is None) != (mark.version is None):
        return "repair" if not same_state else "skip"
    if t > m:
        return "apply"
    return "skip" if t < m or same_state else "repair"


def settle(c: Change, mark: Mark | None, same_state: bool) -> Verdict:
    """What to do with the newest record of a key, given the key's mark (None: no mark)."""
    if mark is None:
        return "apply"
    if mark.origin == READ:
        return against_read(c, mark, same_state)
    return against_record(c, mark, same_state)


def _rank(c: Change) -> tuple[int, int, int, int]:
    # A record with a version outranks one without; then the version; then the time.
    v, t = c.version, micros(c.created_at)
    return (int(v is not None), v if v is not None else 0, int(t is not None), t if t is not None else 0)


def collapse_unordered(changes: list[Change]) -> tuple[list[Change], set[tuple[str, ...]]]:
    """The newest change per key by (`_version`, creation time), and the keys whose order is in doubt.

    Dead letters are all kept. A key is in doubt when its newest record by version is not its
    newest by time (a reset, a re-creation after a delete), when only some of its records carry a
    version, or when its top rank is shared by records that say different things.
    """
    best: dict[tuple[str, ...], Change] = {}
    latest: dict[tuple[str, ...], Change] = {}
    versioned: dict[tuple[str, ...], set[bool]] = {}
    doubts: set[tuple[str, ...]] = set()
    dead: list[Change] = []
    for c in changes:
        if c.kind == "dead":
            dead.append(c)
            continue
        versioned.setdefault(c.key, set()).add(c.version is not None)
        held = best.get(c.key)
        if held is None or _rank(c) > _rank(held):
            best[c.key] = c
        elif _rank(c) == _rank(held) and not same_change(c, held):
            doubts.add(c.key)
        last = latest.get(c.key)
        if last is None or (micros(c.created_at) or 0) > (micros(last.created_at) or 0):
            latest[c.key] = c
    for key, c in best.items():
        if len(versioned[key]) > 1 or micros(latest[key].created_at) != micros(c.created_at):
            doubts.add(key)
    return dead + list(best.values()), doubts


def same_change(a: Change, b: Change) -> bool:
    """Two records that leave the item in the same state (both deletes, or the same image)."""
    if a.kind != b.kind:
        return False
    if a.kind == "delete":
        return True
    return a.row is not None and a.row == b.row if a.row is not None or b.row is not None else a.item == b.item
