"""The readiness marker: one row that tells a reader whether the cache is complete and how fresh.

`_sync_readiness` holds exactly one row, `id = 1`:
- `complete` (0/1): 1 from the commit that published the last of the five tables after its first
  full sync; never 1 while any table still waits for its first full sync.
- `completed_at` (unix seconds, REAL): when that commit happened (NULL before).
- `last_commit_at` (unix seconds, REAL): the writer's last commit, written inside every write
  transaction (each applied batch, each idle checkpoint touch, each swap), so it is exactly as old
  as the data a reader sees.

The Node client and docs/reader-contract.md read these names: keep them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from seo_sync.schema import TABLES

CREATE = ("CREATE TABLE IF NOT EXISTS _sync_readiness ("
          "id INTEGER PRIMARY KEY CHECK (id = 1), complete INTEGER NOT NULL DEFAULT 0, "
          "completed_at REAL, last_commit_at REAL)")
_PLACEHOLDERS = ", ".join("?" for _ in TABLES)
# Tables that have had a complete full sync (the swap that ended it wrote last_full_sync). Only
# placeholders and constants are formatted into these statements (hence the bare nosec: bandit
# warns about a test id on an f-string).
_SYNCED = ("SELECT count(*) AS n FROM _sync_tables WHERE last_full_sync IS NOT NULL "
           f"AND table_name IN ({_PLACEHOLDERS})")  # nosec
# Bound in text order: completed_at, last_commit_at, then the table names of _SYNCED.
_FIRST_ROW = (f"INSERT OR IGNORE INTO _sync_readiness (id, complete, completed_at, last_commit_at) "
              f"SELECT 1, n = {len(TABLES)}, CASE WHEN n = {len(TABLES)} THEN ? END, ? "
              f"FROM ({_SYNCED})")  # nosec
_COMPLETE = (f"UPDATE _sync_readiness SET complete = 1, completed_at = ? WHERE id = 1 AND complete = 0 "
             f"AND ({_SYNCED}) = {len(TABLES)}")  # nosec
_STAMP = "UPDATE _sync_readiness SET last_commit_at = ? WHERE id = 1"
_READ = "SELECT complete, completed_at, last_commit_at FROM _sync_readiness WHERE id = 1"


@dataclass(frozen=True)
class Readiness:
    """The marker as read: complete, when it became complete, the last commit (unix seconds)."""

    complete: bool
    completed_at: float | None
    last_commit_at: float | None


def create(conn: sqlite3.Connection, now: float) -> None:
    """Create the marker (inside the caller's transaction); a cache whose five tables all had a full
    sync before the marker existed starts out complete."""
    conn.execute(CREATE)
    conn.execute(_FIRST_ROW, (now, now, *TABLES))


def stamp(conn: sqlite3.Connection, now: float) -> None:
    """Record a commit about to happen (call as the last statement of a write transaction)."""
    conn.execute(_STAMP, (now,))


def mark_complete_if_synced(conn: sqlite3.Connection, now: float) -> bool:
    """In the transaction that publishes tables: complete = 1 once all five have had a full sync."""
    return conn.execute(_COMPLETE, (now, *TABLES)).rowcount > 0


def read(conn: sqlite3.Connection) -> Readiness:
    """The marker (not complete when the row or the table is missing)."""
    try:
        row = conn.execute(_READ).fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is None:
        return Readiness(False, None, None)
    return Readiness(bool(row[0]), row[1], row[2])
