"""How a reader (the generation server) reads the seo-sync cache. Standard library only; copy freely.

The contract (docs/reader-contract.md):
- open ``file:<data dir>/cache.db?mode=ro`` as a URI: the reader never writes and never creates a
  file. Never add ``immutable=1``: it turns locking off and reads torn pages while the daemon writes;
- run as a user in the cache's group (``seo-sync``); the data directory is 0750 and files 0640;
- hold one read transaction (BEGIN … COMMIT) around every read that takes more than one statement,
  so it sees one consistent state; keep it short, a long one stops the WAL from being recycled;
- wait on a busy database (busy_timeout) and retry the whole read a few times: SQLITE_BUSY is brief
  and normal while the daemon starts, stops, or recovers the WAL after a crash;
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
JSON_COLUMNS = {"data", "required_variables", "optional_variables", "_extra", "_types"}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def connect(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the cache (fails if the file does not exist; never creates one)."""
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def _is_busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(e) or "busy" in str(e)


def read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], retries: int = RETRIES) -> T:
    """Run `fn(conn)` inside one read transaction (one snapshot); retry the whole read while busy."""
    for attempt in range(retries + 1):
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")  # ends the snapshot; nothing was written
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or attempt == retries:
                if "readonly database" in str(e):
                    raise sqlite3.OperationalError(
                        f"{e}: the cache's -wal/-shm files are missing and this user may not create them; "
                        "see docs/reader-contract.md (start the daemon, or stop it cleanly)") from e
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


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per table, all from one snapshot."""
    return read(conn, lambda c: {t: c.execute(sql).fetchone()[0] for t, sql in COUNT_SQL.items()})


def main(argv: list[str]) -> int:
    """Print the row counts, or one business profile, as JSON."""
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 64
    conn = connect(argv[0])
    try:
        result = business_profile(conn, argv[1]) if len(argv) > 1 else counts(conn)
    finally:
        conn.close()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
