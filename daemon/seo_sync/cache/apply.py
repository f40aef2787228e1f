"""Applying changes to one data table (live or shadow) inside the caller's transaction.

Records of an ordered feed are applied in feed order, the last one per key, with no version
check: their order is the item's history. Only a key with a mark (its state was read from
DynamoDB directly, or came from an unordered feed) compares the record with that mark first
(order.py); a record refused there, and every dead letter with a key, is handed back as a key to
read again from DynamoDB (`ApplyResult.repair`). A consistent read applied as the truth is
`apply_truth`: it writes the row or removes it, and leaves the mark later records are held to.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from seo_sync import codec
from seo_sync.cache import changelog
from seo_sync.cache.sql import (
    ANY_MARK,
    ANY_TOMBSTONE,
    CLEAR_TOMBSTONE,
    DELETE_MARK,
    DELETE_REPAIR,
    INSERT_DEAD_LETTER,
    INSERT_REPAIR,
    SELECT_MARK,
    UPSERT_MARK,
    UPSERT_TOMBSTONE,
    ApplyResult,
    Statements,
    key_text,
)
from seo_sync.changes import Change, collapse
from seo_sync.order import READ, Mark, collapse_unordered, mark_of, settle
from seo_sync.schema import TableSpec

DeadRow = tuple[str, str, str, str | None, str | None, float, str | None]


def _key_params(key: tuple[str, ...]) -> dict[str, str]:
    return {f"k{i}": k for i, k in enumerate(key)}


def _mark(cur: sqlite3.Cursor, name: str, kt: str) -> Mark | None:
    row = cur.execute(SELECT_MARK, (name, kt)).fetchone()
    return None if row is None else Mark(row[0], row[1], row[2], bool(row[3]))


def _same_state(cur: sqlite3.Cursor, st: Statements, c: Change, row: tuple[Any, ...] | None) -> bool:
    """Whether applying `c` would leave the row as it is (the rare path: only keys with a mark)."""
    held = cur.execute(st.select_key, _key_params(c.key)).fetchone()
    if c.kind == "delete":
        return held is None
    return held is not None and row is not None and tuple(held) == tuple(row)


@dataclass
class _Writes:
    """What settling a batch decided to write, gathered so that each kind is written in one call."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    upserted_keys: list[tuple[str, str]] = field(default_factory=list)
    deletes: list[tuple[Change, str]] = field(default_factory=list)
    dead: list[DeadRow] = field(default_factory=list)
    marks: list[tuple[Any, ...]] = field(default_factory=list)
    unmark: list[tuple[str, str]] = field(default_factory=list)


def apply_changes(cur: sqlite3.Cursor, spec: TableSpec, st: Statements, name: str, changes: list[Change],
                  *, shard_id: str, ordered: bool = True, read_floor: float | None = None,
                  floor: float | None = None) -> ApplyResult:
    """Apply a batch to table `name` (see the module docstring); the caller holds the transaction.

    Three steps: choose the record that counts per key, settle each against the key's mark, write
    what stands. `read_floor`: a key with no mark counts as read from DynamoDB at that time (a
    shadow the Scan filled, which read each row then or later). `floor` (a live table on an
    unordered feed): a record of a key with no mark created before it is a doubt (order.py, case 3).
    Every Change is one `changes.to_change` made: an upsert carries its row.
    """
    res = ApplyResult(records=len(changes))
    now = time.time()
    chosen, doubts = _choose(changes, ordered)
    writes = _settle(cur, spec, st, name, chosen, doubts, res, shard_id=shard_id, ordered=ordered,
                     read_floor=read_floor, floor=floor, now=now)
    _write(cur, spec, st, name, writes, res, now)
    return res


def _choose(changes: list[Change], ordered: bool) -> tuple[list[Change], set[tuple[str, ...]]]:
    """The record that counts for each key, and the keys whose order the records cannot tell."""
    if ordered:
        return collapse(changes), set()
    return collapse_unordered(changes)


def _settle(cur: sqlite3.Cursor, spec: TableSpec, st: Statements, name: str, chosen: list[Change],
            doubts: set[tuple[str, ...]], res: ApplyResult, *, shard_id: str, ordered: bool,
            read_floor: float | None, floor: float | None, now: float) -> _Writes:
    """Each chosen record held to its key's mark (when the table has any): what is written, and in
    `res` what is skipped and which keys DynamoDB is asked about again."""
    marked = not ordered or bool(cur.execute(ANY_MARK, (name,)).fetchone()[0])
    w = _Writes()
    for c in chosen:
        if c.kind == "dead":
            kt = key_text(c.key) if c.key else None
            w.dead.append((spec.name, shard_id, c.seq, c.reason, c.raw, now, kt))
            if c.key:
                res.repair.append(c.key)
            continue
        kt = key_text(c.key)
        if c.key in doubts:  # whatever happens to this record below, DynamoDB settles the key
            res.repair.append(c.key)
        if marked:
            mark = _mark(cur, name, kt)
            if mark is None and read_floor is not None:
                held = cur.execute(st.select_key, _key_params(c.key)).fetchone() is not None
                mark = Mark(None, read_floor, READ, held)
            verdict = settle(c, mark, mark is not None and _same_state(cur, st, c, c.row), ordered=ordered,
                             floor=floor)
            if verdict != "apply":
                res.skipped_stale += 1
                if verdict == "repair" and c.key not in doubts:
                    res.repair.append(c.key)
                continue
            if not ordered:
                m = mark_of(c)
                w.marks.append((name, kt, m.version, m.at, m.origin, int(m.present)))
            elif mark is not None:
                w.unmark.append((name, kt))  # newer than the read: the feed's order holds from here on
        if c.kind == "upsert":
            assert c.row is not None, "an upsert Change is made by to_change, which builds its row"
            w.rows.append(c.row)
            w.upserted_keys.append((spec.name, kt))
        else:
            res.ttl_deletes += int(c.ttl)
            w.deletes.append((c, kt))
    return w


def _write(cur: sqlite3.Cursor, spec: TableSpec, st: Statements, name: str, w: _Writes, res: ApplyResult,
           now: float) -> None:
    """Write what settling decided: rows, deletes and their tombstones, the change log, marks,
    dead letters and the repair reads asked for."""
    if w.rows:
        cur.executemany(st.upsert, w.rows)
        res.upserted = len(w.rows)
        # Most batches meet no tombstone at all: one probe spares one per row.
        if cur.execute(ANY_TOMBSTONE, (spec.name,)).fetchone()[0]:
            cur.executemany(CLEAR_TOMBSTONE, w.upserted_keys)
    removed: list[str] = []
    for c, kt in w.deletes:
        if cur.execute(st.delete, _key_params(c.key)).rowcount > 0:
            removed.append(kt)
        res.deleted += 1
        cur.execute(UPSERT_TOMBSTONE, (spec.name, kt, c.version, int(c.hard), now))
    if name == spec.name:  # a live table: readers that watch learn of it in this same transaction
        changelog.record(cur, spec.name, [kt for _, kt in w.upserted_keys], removed, now)
    if w.unmark:
        cur.executemany(DELETE_MARK, w.unmark)
    if w.marks:
        cur.executemany(UPSERT_MARK, w.marks)
    if w.dead:
        cur.executemany(INSERT_DEAD_LETTER, w.dead)
        res.dead = len(w.dead)
    if res.repair:
        cur.executemany(INSERT_REPAIR, [(spec.name, key_text(k), "stream", now) for k in res.repair])


KNOWN_KEY = ("SELECT EXISTS (SELECT 1 FROM _sync_tombstones WHERE table_name = ? AND key = ?) "
             "OR EXISTS (SELECT 1 FROM _sync_marks WHERE table_name = ? AND key = ?)")
PENDING_FOR_KEY = ("SELECT EXISTS (SELECT 1 FROM _sync_repairs WHERE table_name = ? AND key = ?) "
                   "OR EXISTS (SELECT 1 FROM _sync_dead_letters WHERE table_name = ? AND key = ? "
                   "AND resolved_at IS NULL)")


def knows_key(cur: sqlite3.Cursor, spec: TableSpec, st: Statements, key: tuple[str, ...]) -> bool:
    """Whether the cache holds anything of this key: its row, a tombstone, a mark, a pending repair
    read or an unresolved dead letter. A read that finds the key absent in DynamoDB changes nothing
    of a key the cache does not know."""
    kt = key_text(key)
    if cur.execute(st.select_key, {f"k{i}": k for i, k in enumerate(key)}).fetchone() is not None:
        return True
    return bool(cur.execute(KNOWN_KEY, (spec.name, kt, spec.name, kt)).fetchone()[0]
                or cur.execute(PENDING_FOR_KEY, (spec.name, kt, spec.name, kt)).fetchone()[0])


def apply_truth(cur: sqlite3.Cursor, spec: TableSpec, st: Statements, key: tuple[str, ...],
                item: codec.Item | None, read_at: float) -> ApplyResult:
    """Apply DynamoDB's consistent answer for one key as the truth, and mark the key as read at `read_at`."""
    res = ApplyResult(records=1)
    kt = key_text(key)
    present = item is not None and not codec.is_deleted(item)
    version = codec.usable_version(item)
    if present:
        assert item is not None
        try:
            row = codec.row_values(spec, item)
        except codec.CodecError as e:  # DynamoDB never holds such an item; a letter says so
            cur.execute(INSERT_DEAD_LETTER, (spec.name, "read", "", str(e.message), None, time.time(), kt))
            res.dead = 1
            return res
        held = cur.execute(st.select_key, _key_params(key)).fetchone()
        cur.execute(st.upsert, row)
        cur.execute(CLEAR_TOMBSTONE, (spec.name, kt))
        res.upserted = 1
        if held is None or tuple(held) != tuple(row):  # a read that confirms the row changes nothing
            changelog.record(cur, spec.name, [kt], [], time.time())
    else:
        gone = cur.execute(st.delete, _key_params(key)).rowcount
        if gone <= 0 and not cur.execute(KNOWN_KEY, (spec.name, kt, spec.name, kt)).fetchone()[0]:
            # Absent in DynamoDB and unknown here (no row, tombstone or mark): nothing to hold back,
            # so nothing is written; a refresh of keys nobody has leaves the file as it was.
            cur.execute(DELETE_REPAIR, (spec.name, kt))
            return res
        res.deleted = max(gone, 0)
        if gone > 0:
            changelog.record(cur, spec.name, [], [kt], time.time())
        cur.execute(UPSERT_TOMBSTONE, (spec.name, kt, version, int(item is None), time.time()))
    cur.execute(UPSERT_MARK, (spec.name, kt, version, read_at, READ, int(present)))
    cur.execute(DELETE_REPAIR, (spec.name, kt))
    return res
