"""Who is newer: a change record against another record, or against a state read from DynamoDB.

Pure rules, no I/O. Two kinds of change feed reach the cache.

An ordered feed (DynamoDB Streams): within one shard an item's records come in the order the item
changed, so a later record is newer even when its `_version` is lower (a foreign writer reset it;
the item was deleted and created again; `_deleted` was set and removed without a bump). Records
are applied in that order with no version check at all.

An unordered feed (Kinesis Data Streams for DynamoDB): records may arrive out of order, more than
once and late. An item's changes are ordered by DynamoDB's clock, the record's
ApproximateCreationDateTime (microseconds where the destination declares that precision), and
never by `_version`: writers reset it, and a REMOVE carries the version of the item it removed.
The cases, for the newest record `c` of a key (a batch is first collapsed per key by creation
time, never by position):

1. The key's mark is the last record applied (created at `m`): `c` is newer when created after
   `m`, older (skipped) when created before; two records stamped within FEED_TIME_PRECISION of
   each other that say different things are a doubt.
2. The key's mark is a direct read of DynamoDB sent at `r` (a `refresh`, the write path's own
   cache write, a repair read, a Scan's row): `c` is newer when created after `r` + the clock
   bound, one the read already saw when created before `r` - the precision - the clock bound,
   and otherwise a doubt, unless it says exactly what the read said.
3. The key has no mark: `c` applies, unless it was created before the table's floor, the time
   from which every state of the table carries a mark (its last full sync's swap, and the age
   after which marks expire): such a record is late beyond what the marks remember, and is a doubt.
4. A doubt is settled by a repair read: a consistent read of the item applied as the truth,
   leaving a read mark; records created before that read settle against it by case 2.

So lateness never changes the result: a late record meets the mark of what was applied or read
for its key after it was created (and is skipped or repaired), or, when no mark can say, DynamoDB.

On the ordered feed a record meets a mark only when a direct read came first; it is compared by
case 2, except that inside the clock bound a higher integer `_version` applies: the shard's later
records follow in order and settle the key whatever a version says.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from seo_sync.changes import Change

# How far the host's clock and DynamoDB's may disagree, plus the precision of a record's creation
# time against a read: real DynamoDB Streams gives ApproximateCreationDateTime in whole seconds
# (truncated), so a record stamped t happened in [t, t + 1).
CLOCK_SKEW = 1.0
STREAM_TIME_PRECISION = 1.0
# Two records of one item on the unordered feed are told apart by their creation times when these
# differ by at least this much: Kinesis's default precision is the millisecond; a microsecond
# destination is finer, and two changes of one item within a millisecond are rare enough that a
# repair read for them costs nothing.
FEED_TIME_PRECISION = 0.001
PRECISION_US = round(FEED_TIME_PRECISION * 1_000_000)
# A record this close to a read may be either side of it.
READ_WINDOW = CLOCK_SKEW + STREAM_TIME_PRECISION

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


def against_read(c: Change, mark: Mark, same_state: bool, *, ordered: bool, skew: float = CLOCK_SKEW) -> Verdict:
    """Case 2: a record against a state read from DynamoDB at `mark.at` (see the module docstring)."""
    t, read_at = c.created_at, mark.at
    if t is not None and read_at is not None:
        if t - skew > read_at:
            return "apply"
        if t + STREAM_TIME_PRECISION + skew < read_at:
            return "skip"
    if ordered and c.version is not None and mark.version is not None and c.version > mark.version:
        return "apply"
    return "apply" if same_state else "repair"


def against_record(c: Change, mark: Mark, same_state: bool) -> Verdict:
    """Case 1: a record of an unordered feed against the last one applied for its key."""
    t, m = micros(c.created_at), micros(mark.at)
    if t is None or m is None or abs(t - m) < PRECISION_US:
        return "skip" if same_state else "repair"
    return "apply" if t > m else "skip"


def settle(c: Change, mark: Mark | None, same_state: bool, *, ordered: bool = False,
           floor: float | None = None) -> Verdict:
    """What to do with the newest record of a key, given the key's mark (None: no mark) and, on the
    unordered feed, the table's floor (case 3)."""
    if mark is None:
        if ordered or floor is None:
            return "apply"
        return "repair" if c.created_at is None or c.created_at < floor else "apply"
    if mark.origin == READ:
        return against_read(c, mark, same_state, ordered=ordered)
    return against_record(c, mark, same_state)


def collapse_unordered(changes: list[Change]) -> tuple[list[Change], set[tuple[str, ...]]]:
    """The newest change per key by creation time, and the keys whose order is in doubt.

    Dead letters are all kept. A key is in doubt when a record that says something else than its
    newest was stamped within FEED_TIME_PRECISION of it, or when some of its records carry no time.
    """
    by_key: dict[tuple[str, ...], list[Change]] = {}
    dead: list[Change] = []
    for c in changes:
        if c.kind == "dead":
            dead.append(c)
        else:
            by_key.setdefault(c.key, []).append(c)
    chosen: list[Change] = []
    doubts: set[tuple[str, ...]] = set()
    for key, cs in by_key.items():
        best = max(cs, key=lambda c: micros(c.created_at) or 0)
        top = micros(best.created_at)
        for c in cs:
            if c is best or same_change(c, best):
                continue
            t = micros(c.created_at)
            if t is None or top is None or top - t < PRECISION_US:
                doubts.add(key)
                break
        chosen.append(best)
    return dead + chosen, doubts


def same_change(a: Change, b: Change) -> bool:
    """Two records that leave the item in the same state (both deletes, or the same image)."""
    if a.kind != b.kind:
        return False
    if a.kind == "delete":
        return True
    return a.row is not None and a.row == b.row if a.row is not None or b.row is not None else a.item == b.item
