"""How a reader (the generation server) reads the seo-sync cache. Standard library only; copy freely.

The contract (docs/reader-contract.md):
- open ``file:<data dir>/cache.db?mode=ro`` as a URI: the reader never writes and never creates a
  file. Never add ``immutable=1``: it turns locking off and reads torn pages while the daemon writes;
- run as a user in the cache's group (``seo-sync``); the data directory is 0750 and files 0640;
- before trusting the data, check the readiness marker: ``_sync_readiness.complete`` is 1 once all
  five tables were published complete (a first boot publishes them together, in one commit), and
  ``last_commit_at`` says how fresh the cache is. A missing file means the first boot has not
  published yet;
- hold one read transaction (BEGIN … COMMIT) around every read that takes more than one statement,
  so it sees one consistent state; keep it short, a long one stops the WAL from being recycled;
- wait on a busy database (busy_timeout) and retry the whole read a few times on SQLITE_BUSY,
  SQLITE_READONLY_RECOVERY and SQLITE_READONLY_CANTINIT only: the daemon keeps the cache in WAL mode
  with its -wal/-shm files in place through start, stop, kill and resync, so no other error is part
  of its life cycle;
- rows deleted or soft-deleted in DynamoDB are simply absent; tables starting ``_sync_`` are the
  daemon's bookkeeping and ``_shadow_`` ones a full sync in progress (never read them); maps, lists,
  sets and unknown attributes (``_extra``) are JSON text, ``_types`` says which arrays were sets;
  numbers are INTEGER or REAL (TEXT only beyond a double's 15-17 digits), so they compare as numbers.

Usage: python examples/reader.py /var/lib/seo-sync/cache.db [business-id]
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
BUSY_TIMEOUT_S = 5.0  # SQLite waits this long for a lock before raising SQLITE_BUSY
RETRIES = 4  # then the whole read is retried with backoff: 0.05, 0.1, 0.2, 0.4 s
# Whole statements, never SQL assembled from strings: values are always bound parameters.
COUNT_SQL = {
    "businesses": "SELECT count(*) FROM businesses",
    "questionnaires": "SELECT count(*) FROM questionnaires",
    "keywords": "SELECT count(*) FROM keywords",
    "service_areas": "SELECT count(*) FROM service_areas",
    "prompt_templates": "SELECT count(*) FROM prompt_templates",
}
CHILD_ROWS_SQL = {
    "keywords": "SELECT * FROM keywords WHERE business_id = ? ORDER BY keyword_id",
    "service_areas": "SELECT * FROM service_areas WHERE business_id = ? ORDER BY area_id",
    "prompt_templates": "SELECT * FROM prompt_templates WHERE business_id = ? ORDER BY template_id",
}
READINESS_SQL = "SELECT complete, completed_at, last_commit_at FROM _sync_readiness WHERE id = 1"
JSON_COLUMNS = {"data", "required_variables", "optional_variables", "_extra", "_types"}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# The shared WAL index needs rebuilding and only a writer may do it (RECOVERY): for a moment while
# the daemon starts, or until it restarts after being killed in the middle of a commit. Or no writer
# could be seen holding the index at the moment this connection looked, so its content could not be
# trusted (CANTINIT): SQLite normally answers that itself by reading from its own memory, but a
# look that races the daemon's start can still return it. Both transient; retried.
_WAL_INDEX_CODES = {sqlite3.SQLITE_READONLY_RECOVERY, sqlite3.SQLITE_READONLY_CANTINIT}


def connect(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the cache (fails if the file does not exist; never creates one)."""
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def _is_transient(e: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED, or the WAL index not yet usable: retry the whole read."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES or code in _WAL_INDEX_CODES
    return "locked" in str(e) or "busy" in str(e)


def read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], retries: int = RETRIES) -> T:
    """Run `fn(conn)` inside one read transaction (one snapshot); retry the whole read while busy
    (or while the WAL index waits for the daemon to rebuild it)."""
    for attempt in range(retries + 1):
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")  # ends the snapshot; nothing was written
        except sqlite3.OperationalError as e:
            if not _is_transient(e) or attempt == retries:
                if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY_DIRECTORY:
                    raise sqlite3.OperationalError(
                        f"{e}: the cache's -wal/-shm files are missing and this user may not create them; "
                        "see docs/reader-contract.md (something other than the daemon removed them: "
                        "starting the daemon puts them back)") from e
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {k: json.loads(row[k]) if k in JSON_COLUMNS and row[k] is not None else row[k] for k in row.keys()}


def business_profile(conn: sqlite3.Connection, business_id: str) -> dict[str, Any] | None:
    """Everything the generator needs about one business, from one consistent snapshot (None if absent)."""

    def fetch(c: sqlite3.Connection) -> dict[str, Any] | None:
        business = c.execute("SELECT * FROM businesses WHERE business_id = ?", (business_id,)).fetchone()
        if business is None:
            return None
        profile: dict[str, Any] = {"business": _row(business)}
        q = c.execute("SELECT * FROM questionnaires WHERE business_id = ?", (business_id,)).fetchone()
        profile["questionnaire"] = _row(q) if q else None
        for table, sql in CHILD_ROWS_SQL.items():
            profile[table] = [_row(r) for r in c.execute(sql, (business_id,))]
        return profile

    return read(conn, fetch)


def counts_in(c: sqlite3.Connection) -> dict[str, int]:
    """Rows per table (call inside `read`, to combine with other statements in one snapshot)."""
    return {t: c.execute(sql).fetchone()[0] for t, sql in COUNT_SQL.items()}


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per table, all from one snapshot."""
    return read(conn, counts_in)


def readiness_in(c: sqlite3.Connection) -> dict[str, Any]:
    """The readiness marker (call inside `read`): complete, completed_at, last_commit_at, age_seconds.

    A cache written before the marker existed has no `_sync_readiness` table: treat it as not
    known to be complete.
    """
    has_marker = c.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sync_readiness'").fetchone()[0]
    row = c.execute(READINESS_SQL).fetchone() if has_marker else None
    if row is None:
        return {"complete": False, "completed_at": None, "last_commit_at": None, "age_seconds": None}
    complete, completed_at, last_commit_at = row
    age = None if last_commit_at is None else round(max(0.0, time.time() - last_commit_at), 3)
    return {"complete": bool(complete), "completed_at": completed_at, "last_commit_at": last_commit_at,
            "age_seconds": age}


def readiness(conn: sqlite3.Connection) -> dict[str, Any]:
    """The readiness marker, from one snapshot."""
    return read(conn, readiness_in)


def wait_until_complete(path: str | Path, timeout: float, poll: float = 1.0) -> sqlite3.Connection:
    """A connection to a cache whose marker says complete; TimeoutError if that does not happen in time.

    During a first boot the file may not exist yet: that is "not ready", not an error.
    """
    deadline = time.monotonic() + timeout
    while True:
        if Path(path).exists():
            conn = connect(path)
            if readiness(conn)["complete"]:
                return conn
            conn.close()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the cache at {path} is not complete yet (first boot still running?)")
        time.sleep(poll)


def main(argv: list[str]) -> int:
    """Print the readiness marker and row counts, or one business profile, as JSON."""
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 64
    conn = connect(argv[0])
    try:
        if len(argv) > 1:
            result = business_profile(conn, argv[1])
        else:
            result = read(conn, lambda c: {"readiness": readiness_in(c), "counts": counts_in(c)})
    finally:
        conn.close()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
