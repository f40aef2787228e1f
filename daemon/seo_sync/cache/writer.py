"""The cache database: the only writer of `cache.db`.

One writer at a time (an exclusive flock on `cache.db.lock`); readers open it read-only. A batch
of stream records, its dead letters and the shard checkpoint commit in one transaction (D1), and
a full sync fills a shadow table that replaces the live one in one transaction (D5).
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from seo_sync import codec
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.reader import Reader, wal_header_without_shm
from seo_sync.cache.scanned import ScannedPage, scanned_page
from seo_sync.cache.sql import (
    CLEAR_OLDER_TOMBSTONE,
    INSERT_DEAD_LETTER,
    SHADOW_PREFIX,
    UPSERT_TOMBSTONE,
    ApplyResult,
    Checkpoint,
    Statements,
    data_table_ddl,
    key_text,
    q,
)
from seo_sync.changes import Change, collapse
from seo_sync.errors import CacheBusy, CacheCorrupt, CacheError
from seo_sync.schema import TABLES, TableSpec

# Re-exported: callers import these from daemon.cache, as before the split.
__all__ = ["SCHEMA_VERSION", "SHADOW_PREFIX", "ApplyResult", "Cache", "Checkpoint", "Connection", "Reader",
           "WriterLock", "connect_read_only", "key_text", "q"]

SCHEMA_VERSION = 1
Connection = sqlite3.Connection
_key_text = key_text  # the name tests knew it by


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the cache at `path` (what Reader.open uses)."""
    # A URI: '?', '#' and '%' in a directory name would otherwise end or change the path.
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Cache:
    """An open cache database (writer side). Use `Cache.open` under a WriterLock."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)
        self._stmts: dict[str, Statements] = {}

    # -- lifecycle --------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, busy_timeout_ms: int = 5000, check: bool = True) -> Cache:
        """Open (creating and migrating) the cache at `path`; CacheCorrupt if it fails quick_check."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if check:
                result = conn.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    conn.close()
                    raise CacheCorrupt(f"cache {path} failed quick_check: {result[:200]}",
                                       hint="it is set aside and rebuilt by a full sync")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e) or "malformed" in str(e):
                raise CacheCorrupt(f"cache {path} is not a valid database: {e}",
                                   hint="it is set aside and rebuilt by a full sync") from None
            if "locked" in str(e) or "busy" in str(e):
                # After a clean stop the file is in rollback-journal mode; going back to WAL needs a
                # moment with no read transaction open (docs/reader-contract.md).
                raise CacheBusy(f"cannot open cache {path}: {e}",
                                hint="a reader holds a long read transaction; retry when it ends") from None
            raise CacheError(f"cannot open cache {path}: {e}") from None
        cache = cls(conn, path)
        cache.migrate()
        return cache

    def close(self) -> None:
        """Close the connection, leaving a file that read-only readers can open (docs/reader-contract.md).

        A clean close of the last WAL connection deletes -wal and -shm, and a reader that may not
        create files in the data directory then cannot open the database at all. So the writer
        switches the file to journal_mode=DELETE (which checkpoints) before closing; the next `open`
        switches it back to WAL. While a reader is connected the switch fails at once and the WAL
        files stay, which is what that reader needs; if that reader left before our close, the
        files went with it and the switch is retried on a fresh connection.
        """
        _leave_rollback_journal(self.conn)
        self.conn.close()
        for _ in range(3):
            if not wal_header_without_shm(self.path):
                return
            conn = sqlite3.connect(self.path, isolation_level=None)
            _leave_rollback_journal(conn)
            conn.close()

    def migrate(self) -> None:
        """Create the internal and data tables if missing; drop leftover shadows of a killed sync."""
        with self.transaction():
            db = self.db
            db.table("_sync_meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db.table("_sync_tables").create(
                {"table_name": str, "stream_arn": str, "last_full_sync": float, "full_sync_reason": str},
                pk="table_name", if_not_exists=True)
            db.table("_sync_checkpoints").create(
                {"table_name": str, "shard_id": str, "stream_arn": str, "parent_shard_id": str,
                 "sequence_number": str, "closed": int, "latest_as_of": float, "updated_at": float},
                pk=("table_name", "shard_id"), if_not_exists=True)
            db.table("_sync_tombstones").create(
                {"table_name": str, "key": str, "version": int, "hard": int, "deleted_at": float},
                pk=("table_name", "key"), if_not_exists=True)
            db.table("_sync_dead_letters").create(
                {"id": int, "table_name": str, "shard_id": str, "sequence_number": str, "reason": str,
                 "record": str, "at": float}, pk="id", if_not_exists=True)
            for spec in TABLES.values():
                self.conn.execute(data_table_ddl(spec, spec.name))
                self.conn.execute(f"DROP TABLE IF EXISTS {q(SHADOW_PREFIX + spec.name)}")
            self.conn.execute(
                "INSERT OR REPLACE INTO _sync_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def transaction(self) -> _Transaction:
        """`with cache.transaction():` BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception."""
        return _Transaction(self.conn)

    def _statements(self, spec: TableSpec, name: str | None = None) -> Statements:
        name = name or spec.name
        if name not in self._stmts:
            self._stmts[name] = Statements(spec, name)
        return self._stmts[name]

    # -- applying changes -------------------------------------------------------------------------

    def apply_batch(self, spec: TableSpec, changes: list[Change], checkpoint: Checkpoint | None,
                    *, shadow: bool = False, shard_id: str = "") -> ApplyResult:
        """Apply one batch and move its checkpoint, in one transaction; replaying it is a no-op."""
        with self.transaction():
            result = self._apply(spec, changes, shadow=shadow, shard_id=shard_id)
            if checkpoint is not None:
                self._write_checkpoints([checkpoint])
        return result

    def _apply(self, spec: TableSpec, changes: list[Change], *, shadow: bool, shard_id: str) -> ApplyResult:
        name = SHADOW_PREFIX + spec.name if shadow else spec.name
        st = self._statements(spec, name)
        res = ApplyResult(records=len(changes))
        now = time.time()
        rows: list[tuple[Any, ...]] = []
        upserts: list[Change] = []
        deletes: list[tuple[Change, str]] = []
        dead: list[tuple[str, str, str, str | None, str | None, float]] = []
        for c in collapse(changes):
            if c.kind == "upsert":
                row = c.row
                if row is None:  # a Change not made by to_change (apply_item, tests)
                    try:
                        row = codec.row_values(spec, c.item or {})
                    except codec.CodecError as e:
                        dead.append((spec.name, shard_id, c.seq, str(e.message), None, now))
                        continue
                rows.append(row)
                upserts.append(c)
            elif c.kind == "dead":
                dead.append((spec.name, shard_id, c.seq, c.reason, c.raw, now))
            else:
                res.ttl_deletes += int(c.ttl)
                deletes.append((c, key_text(c.key)))
        cur = self.conn.cursor()
        if rows:
            # Inside this write transaction the answer cannot change under us.
            tombstoned = cur.execute("SELECT EXISTS (SELECT 1 FROM _sync_tombstones WHERE table_name = ?)",
                                     (spec.name,)).fetchone()[0]
            if tombstoned:
                guards = [(spec.name, key_text(c.key), c.version, int(c.event == "INSERT")) for c in upserts]
                cur.executemany(st.upsert, [r + g for r, g in zip(rows, guards, strict=True)])
            else:
                cur.executemany(st.upsert_untombstoned, rows)
            res.upserted = max(cur.rowcount, 0)
            res.skipped_stale += len(rows) - res.upserted
            if tombstoned:
                cur.executemany(CLEAR_OLDER_TOMBSTONE, guards)
        for c, kt in deletes:
            keyp = {f"k{i}": k for i, k in enumerate(c.key)}
            if c.version is not None and cur.execute(st.newer_exists, {**keyp, "v": c.version}).fetchone():
                res.skipped_stale += 1
                continue
            cur.execute(st.delete, {**keyp, "v": c.version})
            res.deleted += 1
            cur.execute(UPSERT_TOMBSTONE, (spec.name, kt, c.version, int(c.hard), now))
        if dead:
            cur.executemany(INSERT_DEAD_LETTER, dead)
            res.dead = len(dead)
        return res

    def apply_item(self, spec: TableSpec, key: tuple[str, ...], item: codec.Item | None) -> ApplyResult:
        """Apply a consistent read of one item (the `refresh` path), version-guarded, in one transaction."""
        if item is None or codec.is_deleted(item):
            version = codec.version_of(item) if item else None
            change = Change("delete", spec.name, key, "", version=version, hard=item is None)
        else:
            change = Change("upsert", spec.name, key, "", item=item, version=codec.version_of(item))
        return self.apply_batch(spec, [change], None)

    # -- checkpoints and table state ---------------------------------------------------------------

    def _write_checkpoints(self, cps: Iterable[Checkpoint]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO _sync_checkpoints (table_name, shard_id, stream_arn, parent_shard_id, "
            "sequence_number, closed, latest_as_of, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.table, c.shard_id, c.stream_arn, c.parent_shard_id, c.sequence_number, int(c.closed),
              c.latest_as_of, c.updated_at) for c in cps])

    def save_checkpoints(self, cps: Iterable[Checkpoint]) -> None:
        """Write checkpoints in their own transaction (shard discovered, closed, or at LATEST)."""
        with self.transaction():
            self._write_checkpoints(cps)

    def checkpoints(self, table: str) -> list[Checkpoint]:
        """The committed checkpoints of one table."""
        rows = self.conn.execute(
            "SELECT table_name, stream_arn, shard_id, parent_shard_id, sequence_number, closed, latest_as_of, "
            "updated_at FROM _sync_checkpoints WHERE table_name = ?", (table,)).fetchall()
        return [Checkpoint(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in rows]

    def delete_checkpoints(self, table: str, shard_ids: Iterable[str]) -> None:
        """Forget checkpoints of shards that no longer exist (after their children took over)."""
        with self.transaction():
            self.conn.executemany("DELETE FROM _sync_checkpoints WHERE table_name = ? AND shard_id = ?",
                                  [(table, s) for s in shard_ids])

    def table_state(self, table: str) -> dict[str, Any]:
        """stream_arn, last_full_sync and full_sync_reason of one table ({} before its first sync)."""
        row = self.conn.execute(
            "SELECT stream_arn, last_full_sync, full_sync_reason FROM _sync_tables WHERE table_name = ?",
            (table,)).fetchone()
        return {} if row is None else {"stream_arn": row[0], "last_full_sync": row[1], "full_sync_reason": row[2]}

    # -- full sync: shadow tables -----------------------------------------------------------------

    def create_shadow(self, spec: TableSpec) -> None:
        """A fresh, empty shadow table for a full sync (a leftover one is dropped)."""
        name = SHADOW_PREFIX + spec.name
        with self.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {q(name)}")
            self.conn.execute(data_table_ddl(spec, name))

    def drop_shadow(self, spec: TableSpec) -> None:
        """Drop the shadow table of an abandoned full sync."""
        with self.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {q(SHADOW_PREFIX + spec.name)}")

    def insert_scanned(self, spec: TableSpec, items: list[codec.Item]) -> int:
        """Insert one batch of scanned items into the shadow table; returns rows written.

        Items that cannot be stored (bad key) go to dead letters in the same transaction.
        """
        return self.insert_scanned_pages(spec, [scanned_page(spec, items)])

    def insert_scanned_pages(self, spec: TableSpec, pages: Iterable[ScannedPage]) -> int:
        """Insert converted Scan pages and their dead letters into the shadow table in one transaction."""
        st = self._statements(spec, SHADOW_PREFIX + spec.name)
        written = 0
        with self.transaction():
            for page in pages:
                self.conn.executemany(st.plain_insert, page.rows)
                if page.dead:
                    self.conn.executemany(INSERT_DEAD_LETTER, page.dead)
                written += len(page.rows)
        return written

    def apply_to_shadow(self, spec: TableSpec, changes: list[Change], shard_id: str = "") -> ApplyResult:
        """Apply stream records captured during a full sync to the shadow table (one transaction)."""
        return self.apply_batch(spec, changes, None, shadow=True, shard_id=shard_id)

    def swap_shadow(self, spec: TableSpec, stream_arn: str | None, checkpoints: list[Checkpoint],
                    reason: str = "") -> None:
        """Replace the live table by its shadow and its checkpoints, in one transaction."""
        with self.transaction():
            self.conn.execute(f"DROP TABLE {q(spec.name)}")
            self.conn.execute(f"ALTER TABLE {q(SHADOW_PREFIX + spec.name)} RENAME TO {q(spec.name)}")
            self.conn.execute("DELETE FROM _sync_checkpoints WHERE table_name = ?", (spec.name,))
            self._write_checkpoints(checkpoints)
            self.conn.execute(
                "INSERT OR REPLACE INTO _sync_tables (table_name, stream_arn, last_full_sync, full_sync_reason) "
                "VALUES (?, ?, ?, ?)", (spec.name, stream_arn, time.time(), reason))
        self._stmts.pop(spec.name, None)

    def replace_business(self, business_id: str, items: dict[str, list[codec.Item]]) -> int:
        """Replace every row of one business in all five tables with `items`, in one transaction."""
        written = 0
        with self.transaction():
            for spec in TABLES.values():
                st = self._statements(spec)
                self.conn.execute(f"DELETE FROM {q(spec.name)} WHERE {q(spec.hash_key)} = ?", (business_id,))  # nosec B608
                rows = [codec.row_values(spec, it) for it in items.get(spec.name, []) if not codec.is_deleted(it)]
                self.conn.executemany(st.plain_insert, rows)
                written += len(rows)
        return written

    # -- maintenance -----------------------------------------------------------------------------

    def expire_tombstones(self, older_than: float) -> int:
        """Drop tombstones written before `older_than` (epoch seconds)."""
        with self.transaction():
            return self.conn.execute("DELETE FROM _sync_tombstones WHERE deleted_at < ?", (older_than,)).rowcount

    def wal_checkpoint(self) -> tuple[int, int, int]:
        """A PASSIVE WAL checkpoint (never blocks readers): (busy, log frames, checkpointed)."""
        row = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return (row[0], row[1], row[2])

    def quick_check(self) -> str:
        """PRAGMA quick_check: 'ok' or the first problem."""
        return str(self.conn.execute("PRAGMA quick_check").fetchone()[0])

    # -- reads (the writer's own view) ------------------------------------------------------------

    def count(self, table: str) -> int:
        """Rows in one cache table."""
        return Reader(self.conn).count(table)

    def dead_letter_count(self, table: str | None = None) -> int:
        """Dead letters recorded (for one table, or all)."""
        return Reader(self.conn).dead_letter_count(table)


def _leave_rollback_journal(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error:
        pass  # busy (a reader is connected) or disk full: the WAL files stay, readers still work


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise CacheBusy(f"the cache is locked by another connection: {e}",
                                hint="another process holds a write transaction; retrying") from None
            raise CacheError(f"cannot start a cache transaction: {e}") from None
        return self.conn

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as e:
                # SQLITE_FULL / IOERR at COMMIT may already have rolled the transaction back.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise _as_cache_error(e) from None
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise _as_cache_error(exc) from None


def _as_cache_error(e: sqlite3.Error) -> CacheError:
    text = str(e)
    if "full" in text:
        return CacheError(f"the cache disk is full: {text}", hint="free space; the batch was rolled back")
    if "locked" in text or "busy" in text:
        return CacheBusy(f"the cache is locked: {text}")
    if "malformed" in text or "not a database" in text:
        return CacheCorrupt(f"the cache is corrupt: {text}")
    return CacheError(f"cache write failed: {text}")


