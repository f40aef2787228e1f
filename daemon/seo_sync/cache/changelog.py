"""The change log `_sync_changes`: which keys of the live tables changed, in commit order.

Readers that watch the cache (the Node reader's `watch`, `seo-sync changes --follow`) follow it
instead of re-reading everything. Every entry is written by the writer in the same transaction as
the rows it describes, so a reader that sees a row sees its entry and the reverse, whatever
happens to the daemon.

- `seq` only grows. The log is an AUTOINCREMENT table (a trimmed, even empty, log never hands a
  number out twice) whose first number is the creation time in microseconds: a cursor saved from
  an older cache file that was since rebuilt is below the new file's floor, so it gets `reload`.
- `op` is `upsert` (the key's row was written; it may be the same as before), `delete` (the row
  was removed) or `reload` (key NULL: the whole table may have changed; read it again).
- The floor (`_sync_meta.changes_floor`) is the highest `seq` no longer in the log: a reader whose
  cursor is below it has missed entries and must reload, never skip.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seo_sync.cache.sql import key_text, q
from seo_sync.schema import TABLES, TableSpec

UPSERT, DELETE, RELOAD = "upsert", "delete", "reload"
LOG_TABLE = "_sync_changes"
FLOOR_KEY = "changes_floor"
CHANGES_DDL = (f"CREATE TABLE IF NOT EXISTS {LOG_TABLE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
               "table_name TEXT NOT NULL, key TEXT, op TEXT NOT NULL, at REAL NOT NULL)")
INSERT_CHANGE = f"INSERT INTO {LOG_TABLE} (table_name, key, op, at) VALUES (?, ?, ?, ?)"  # nosec
INSERT_CHANGES = (f"INSERT INTO {LOG_TABLE} (table_name, key, op, at) "  # nosec
                  "SELECT ?1, value, ?2, ?3 FROM json_each(?4) ORDER BY key")
SELECT_FLOOR = f"SELECT CAST(value AS INTEGER) FROM _sync_meta WHERE key = '{FLOOR_KEY}'"  # nosec
SELECT_LAST = f"SELECT seq FROM sqlite_sequence WHERE name = '{LOG_TABLE}'"  # nosec
DEFAULT_DIFF_LIMIT = 10_000


def create(conn: sqlite3.Connection, now: float, announce: bool) -> None:
    """Create the log if the file has none, numbered from `now` in microseconds.

    `announce`: the file already held data (an older schema): one `reload` per table tells
    readers that nothing before this point is in the log.
    """
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (LOG_TABLE,)).fetchone():
        return
    conn.execute(CHANGES_DDL)
    first = int(now * 1_000_000)
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (LOG_TABLE, first))
    conn.execute("INSERT OR REPLACE INTO _sync_meta (key, value) VALUES (?, ?)", (FLOOR_KEY, str(first)))
    if announce:
        for name in TABLES:
            record_reload(conn, name, now)


def record(cur: sqlite3.Cursor | sqlite3.Connection, table: str, upserts: Sequence[str],
           deletes: Sequence[str], now: float) -> None:
    """Log keys (key_text form) of `table` written and removed by the caller's transaction.

    One statement per kind, its keys handed over as one JSON array: a statement per key (executemany)
    cost a third of the apply path's time, mostly in statement steps and the AUTOINCREMENT counter
    each one updates.
    """
    if len(upserts) == 1 and not deletes:
        cur.execute(INSERT_CHANGE, (table, upserts[0], UPSERT, now))
        return
    for keys, op in ((upserts, UPSERT), (deletes, DELETE)):
        if keys:
            cur.execute(INSERT_CHANGES, (table, op, now, json.dumps(keys, ensure_ascii=False)))


def record_reload(cur: sqlite3.Cursor | sqlite3.Connection, table: str, now: float) -> None:
    """Log that the whole of `table` may have changed."""
    cur.execute(INSERT_CHANGE, (table, None, RELOAD, now))


@dataclass
class SwapDiff:
    """What a swap logged: the keys whose rows differ, or one reload above the limit."""

    upserts: int = 0
    deletes: int = 0
    reload: bool = False


def record_swap(conn: sqlite3.Connection, spec: TableSpec, shadow: str, limit: int, now: float) -> SwapDiff:
    """Log the exact difference between the live table and the shadow about to replace it.

    A shadow row that is new or differs in any column is an `upsert`; a live key the shadow lacks
    is a `delete`. More than `limit` of them together: one `reload` of the table instead (a
    reader then reads the table again rather than walking the keys one by one).
    """
    live = q(spec.name)
    keys = spec.key_names
    on = " AND ".join(f"s.{q(k)} = l.{q(k)}" for k in keys)
    differs = " OR ".join(f"s.{q(c)} IS NOT l.{q(c)}" for c in spec.column_names if c not in keys)
    s_keys = ", ".join(f"s.{q(k)}" for k in keys)
    l_keys = ", ".join(f"l.{q(k)}" for k in keys)
    found = conn.execute(
        f"SELECT {s_keys}, l.{q(keys[0])} IS NULL FROM {q(shadow)} s LEFT JOIN {live} l ON {on} "  # nosec
        f"WHERE l.{q(keys[0])} IS NULL OR {differs or '0'} LIMIT ?", (limit + 1,)).fetchall()
    changed = [r[:-1] for r in found]
    gone: list[Any] = []
    # Live keys the shadow lacks = live rows - (shadow rows - new ones): counting both tables is
    # cheaper than looking each live key up in the shadow, which is then done only when some are gone.
    if len(changed) <= limit and _count(conn, live) != _count(conn, q(shadow)) - sum(r[-1] for r in found):
        gone = conn.execute(
            f"SELECT {l_keys} FROM {live} l WHERE NOT EXISTS (SELECT 1 FROM {q(shadow)} s WHERE {on}) "  # nosec
            "LIMIT ?", (limit + 1 - len(changed),)).fetchall()
    if len(changed) + len(gone) > limit:
        record_reload(conn, spec.name, now)
        return SwapDiff(reload=True)
    record(conn, spec.name, [key_text(tuple(r)) for r in changed], [key_text(tuple(r)) for r in gone], now)
    return SwapDiff(upserts=len(changed), deletes=len(gone))


def _count(conn: sqlite3.Connection, quoted: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])  # nosec


def trim(conn: sqlite3.Connection, older_than: float, max_rows: int) -> int:
    """Drop entries committed before `older_than` and all but the newest `max_rows`; raise the floor.

    Runs in the caller's transaction; returns the entries dropped.
    """
    by_age = conn.execute(f"SELECT max(seq) FROM {LOG_TABLE} WHERE at < ?", (older_than,)).fetchone()[0]  # nosec
    by_rows = conn.execute(f"SELECT seq FROM {LOG_TABLE} ORDER BY seq DESC LIMIT 1 OFFSET ?",  # nosec
                           (max_rows,)).fetchone()
    through = max(by_age or 0, by_rows[0] if by_rows else 0)
    if not through:
        return 0
    dropped = conn.execute(f"DELETE FROM {LOG_TABLE} WHERE seq <= ?", (through,)).rowcount  # nosec
    floor = conn.execute(SELECT_FLOOR).fetchone()
    if floor is None or floor[0] < through:
        conn.execute("INSERT OR REPLACE INTO _sync_meta (key, value) VALUES (?, ?)", (FLOOR_KEY, str(through)))
    return int(dropped)


# -- the reader's side -------------------------------------------------------------------------


@dataclass
class Entry:
    """One logged change."""

    seq: int
    table: str
    key: list[str] | None
    op: str
    at: float


@dataclass
class Page:
    """Changes after a cursor: `reload` means the cursor fell out of the log (read everything again);
    `cursor` is where the next call starts."""

    changes: list[Entry]
    cursor: int
    reload: bool
    more: bool = False  # the page was full: more entries wait after `cursor`


def since(conn: sqlite3.Connection, cursor: int, table: str | None = None, limit: int = 1000) -> Page:
    """Entries after `cursor` (of one table, or all), at most `limit`; run inside one read transaction."""
    floor = floor_of(conn)
    last_row = conn.execute(SELECT_LAST).fetchone()
    last = int(last_row[0]) if last_row else floor
    if cursor < floor or cursor > last:
        return Page([], last, True)
    rows = conn.execute(f"SELECT seq, table_name, key, op, at FROM {LOG_TABLE} WHERE seq > ? "  # nosec
                        "ORDER BY seq LIMIT ?", (cursor, limit)).fetchall()
    # The cursor moves past other tables' entries too, so a filtered follower never reads them again.
    end = rows[-1][0] if len(rows) == limit else last
    picked = [Entry(r[0], r[1], None if r[2] is None else json.loads(r[2]), r[3], r[4])
              for r in rows if table is None or r[1] == table]
    return Page(picked, end, False, end < last)


def floor_of(conn: sqlite3.Connection) -> int:
    """The log's floor: the lowest cursor it still serves in full."""
    row = conn.execute(SELECT_FLOOR).fetchone()
    return int(row[0]) if row else 0


def data_version(conn: sqlite3.Connection) -> int:
    """PRAGMA data_version: changes when another connection commits; a cheap way to wait for one."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
