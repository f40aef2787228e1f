"""Bringing a cache file of an older schema up to date when it is opened, with no operator.

Schema versions:
1. numbers that were not 64-bit integers were TEXT; a map or list with a set or binary inside
   went whole to `_extra`; items with a string or decimal `_version` were dead letters.
2. numbers are INTEGER / REAL (only when exact) / exact TEXT; JSON columns hold the natural view
   of maps, lists and sets with type notes in `_types`; dead letters carry their item's key and
   are resolved when the truth for that key is applied.
3. the change log `_sync_changes` (cache/changelog.py). A file upgraded from 2 starts its log with
   one `reload` per table: readers learn that nothing before that point is in the log.

The upgrade runs inside the writer's opening transaction, so readers see the old file or the
whole new one. Each data table is rebuilt row by row through the codec: a version-1 row reads back
as the exact item it held, which is then written in the new form. A table that held dead letters
may be missing items that version 1 refused (a valid item with a string `_version`, and every
later change of it): its stream checkpoints are dropped, so the daemon rebuilds that table from
DynamoDB by a full sync as it starts, and its old dead letters are marked resolved by that.
"""

from __future__ import annotations

import sqlite3
import time

import structlog

from seo_sync import codec
from seo_sync.cache import changelog
from seo_sync.cache.sql import data_table_ddl, q
from seo_sync.schema import TABLES, TableSpec

SCHEMA_VERSION = 3
_MIGRATING_PREFIX = "_migrating_"

log = structlog.get_logger()


def stored_version(conn: sqlite3.Connection) -> int | None:
    """The schema version the file says it has; None for a new file (no version recorded yet)."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sync_meta'").fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM _sync_meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def upgrade(conn: sqlite3.Connection, from_version: int | None) -> None:
    """Move the data tables and dead letters from `from_version` (None: a new file) to SCHEMA_VERSION.

    Runs in the caller's transaction, after the internal tables exist.
    """
    if from_version is not None and from_version < 2:
        _upgrade_tables(conn, from_version)
    changelog.create(conn, time.time(), announce=from_version is not None)
    # The writer counts unresolved letters every second: an index keeps that cheap after a flood.
    conn.execute("CREATE INDEX IF NOT EXISTS _sync_dead_letters_unresolved ON _sync_dead_letters (table_name) "
                 "WHERE resolved_at IS NULL")


def _upgrade_tables(conn: sqlite3.Connection, from_version: int) -> None:
    _add_dead_letter_columns(conn)
    for spec in TABLES.values():
        moved, dropped = _rebuild(conn, spec)
        open_letters = conn.execute("SELECT count(*) FROM _sync_dead_letters WHERE table_name = ? "
                                    "AND resolved_at IS NULL", (spec.name,)).fetchone()[0]
        if dropped or open_letters:
            # Items version 1 refused (or a row it wrote that no longer reads back) are fetched
            # again: no checkpoints means a full sync of this table when the daemon starts.
            conn.execute("DELETE FROM _sync_checkpoints WHERE table_name = ?", (spec.name,))
            conn.execute("UPDATE _sync_dead_letters SET resolved_at = ? WHERE table_name = ? "
                         "AND resolved_at IS NULL", (time.time(), spec.name))
        log.info("cache_schema_upgraded", table=spec.name, from_version=from_version, to_version=2,
                 rows=moved, dropped=dropped, full_sync=bool(dropped or open_letters))


def _add_dead_letter_columns(conn: sqlite3.Connection) -> None:
    have = {r[1] for r in conn.execute("PRAGMA table_info(_sync_dead_letters)")}
    if "key" not in have:
        conn.execute("ALTER TABLE _sync_dead_letters ADD COLUMN key TEXT")
    if "resolved_at" not in have:
        conn.execute("ALTER TABLE _sync_dead_letters ADD COLUMN resolved_at FLOAT")


def _rebuild(conn: sqlite3.Connection, spec: TableSpec) -> tuple[int, int]:
    """Rewrite one data table in the current form; (rows moved, rows that did not read back)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (spec.name,)).fetchone()
    if not exists:
        return 0, 0
    target = _MIGRATING_PREFIX + spec.name
    conn.execute(f"DROP TABLE IF EXISTS {q(target)}")
    conn.execute(data_table_ddl(spec, target))
    cols = spec.column_names
    insert = (f"INSERT INTO {q(target)} ({', '.join(q(c) for c in cols)}) "  # nosec
              f"VALUES ({', '.join('?' for _ in cols)})")
    cur = conn.execute(f"SELECT * FROM {q(spec.name)}")  # nosec
    names = [d[0] for d in cur.description]
    moved = dropped = 0
    for values in cur.fetchall():
        try:
            item = codec.row_to_item(spec, dict(zip(names, values, strict=True)))
            conn.execute(insert, codec.row_values(spec, item))
            moved += 1
        except (codec.CodecError, ValueError, TypeError, KeyError):
            dropped += 1
    conn.execute(f"DROP TABLE {q(spec.name)}")
    conn.execute(f"ALTER TABLE {q(target)} RENAME TO {q(spec.name)}")
    return moved, dropped
