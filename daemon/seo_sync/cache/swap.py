"""Publishing a full sync's shadow table inside the caller's transaction: the change log learns
what the swap changes, the shadow replaces the live table with its marks, and the table's sync is
recorded. The checkpoints the shadow is complete up to are written by the caller (cache/writer.py)."""

from __future__ import annotations

import sqlite3

import structlog

from seo_sync.cache import changelog
from seo_sync.cache.sql import SHADOW_PREFIX, q
from seo_sync.schema import TableSpec

log = structlog.get_logger()


def swap_in(conn: sqlite3.Connection, spec: TableSpec, now: float, change_diff_limit: int) -> None:
    """Replace the live table of `spec` by its shadow, logging the change first."""
    _log_swap(conn, spec, now, change_diff_limit)
    conn.execute(f"DROP TABLE {q(spec.name)}")
    conn.execute(f"ALTER TABLE {q(SHADOW_PREFIX + spec.name)} RENAME TO {q(spec.name)}")
    # The shadow is the Scan plus the feed after it: the live table's marks say nothing about it.
    conn.execute("DELETE FROM _sync_marks WHERE table_name = ?", (spec.name,))
    conn.execute("UPDATE _sync_marks SET table_name = ? WHERE table_name = ?", (spec.name, SHADOW_PREFIX + spec.name))


def record_full_sync(conn: sqlite3.Connection, table: str, stream_arn: str | None, reason: str, now: float) -> None:
    """The table's stream and when and why its last full sync was published."""
    conn.execute(
        "INSERT OR REPLACE INTO _sync_tables (table_name, stream_arn, last_full_sync, full_sync_reason) "
        "VALUES (?, ?, ?, ?)", (table, stream_arn, now, reason))


def _log_swap(conn: sqlite3.Connection, spec: TableSpec, now: float, change_diff_limit: int) -> None:
    """Log what the swap of `spec` changes, in the swap's transaction: one `reload` when the table
    was never published (a first boot), else the exact diff against the shadow."""
    synced = conn.execute("SELECT last_full_sync FROM _sync_tables WHERE table_name = ?", (spec.name,)).fetchone()
    if synced is None or synced[0] is None:
        changelog.record_reload(conn, spec.name, now)
        return
    diff = changelog.record_swap(conn, spec, SHADOW_PREFIX + spec.name, change_diff_limit, now)
    log.info("swap_changes_logged", table=spec.name, upserts=diff.upserts, deletes=diff.deletes,
             reload=diff.reload, limit=change_diff_limit)
