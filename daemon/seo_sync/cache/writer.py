"""The cache database: the only writer of `cache.db`.

One writer at a time (an exclusive flock on `cache.db.lock`); readers open it read-only. A batch
of stream records, its dead letters and the shard checkpoint commit in one transaction, and
a full sync fills a shadow table that replaces the live one in one transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from seo_sync import codec
from seo_sync.cache import readiness, wal_files
from seo_sync.cache.connect import atomic
from seo_sync.cache.migrations import SCHEMA_VERSION, stored_version, upgrade
from seo_sync.cache.reader import Reader
from seo_sync.cache.scanned import ScannedPage, scanned_page
from seo_sync.cache.sql import (
    CLEAR_OLDER_TOMBSTONE,
    INSERT_DEAD_LETTER,
    RESOLVE_DEAD_LETTERS,
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


class Swap(NamedTuple):
    """One shadow table to publish: its stream ARN and the checkpoints its rows are complete up to."""

    spec: TableSpec
    stream_arn: str | None
    checkpoints: list[Checkpoint]
    reason: str = ""


class Cache:
    """An open cache database (writer side). Use `Cache.open` under a WriterLock."""

    def __init__(self, conn: sqlite3.Connection, path: Path, keeper: sqlite3.Connection | None = None) -> None:
        self.conn = conn
        self.path = path
        self._keeper = keeper  # read-only; closed after conn so that conn is never the last (wal_files)
        self.db = sqlite_utils.Database(conn)
        self._stmts: dict[str, Statements] = {}

    # -- lifecycle --------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, busy_timeout_ms: int = 5000, check: bool = True) -> Cache:
        """Open (creating and migrating) the cache at `path`; CacheCorrupt if it fails quick_check.

        The file keeps WAL mode, -wal and -shm for its whole life, for readers (cache/wal_files.py).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn, keeper = wal_files.open_writer(path, busy_timeout_ms, check, lambda c: cls(c, path).migrate())
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e) or "malformed" in str(e):
                raise CacheCorrupt(f"cache {path} is not a valid database: {e}",
                                   hint="it is set aside and rebuilt by a full sync") from None
            if "locked" in str(e) or "busy" in str(e):
                raise CacheBusy(f"cannot open cache {path}: {e}",
                                hint="another process holds the database locked; retry when it lets go") from None
            raise CacheError(f"cannot open cache {path}: {e}") from None
        except OSError as e:
            raise CacheError(f"cannot create the cache files at {path}: {e}",
                             hint="the data directory must be writable by the service user") from None
        cache = cls(conn, path, keeper)
        cache.migrate()
        return cache

    def close(self) -> None:
        """Close, leaving -wal and -shm in place for read-only readers (cache/wal_files.py)."""
        wal_files.close_keeping_wal(self.conn, self._keeper, self.path)
        self._keeper = None

    def migrate(self) -> None:
        """Create the internal and data tables if missing, upgrade an older file, drop leftover shadows."""
        with self.transaction():
            db = self.db
            found_version = stored_version(self.conn)
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
                 "record": str, "at": float, "key": str, "resolved_at": float}, pk="id", if_not_exists=True)
            upgrade(self.conn, found_version)
            for spec in TABLES.values():
                self.conn.execute(data_table_ddl(spec, spec.name))
                self.conn.execute(f"DROP TABLE IF EXISTS {q(SHADOW_PREFIX + spec.name)}")
            self.conn.execute(
                "INSERT OR REPLACE INTO _sync_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            readiness.create(self.conn, time.time())

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`with cache.transaction():` one transaction (a savepoint inside one); see cache/connect.py.

        Every commit also moves the readiness marker's last_commit_at, in the same transaction.
        """
        with atomic(self.conn, _as_cache_error) as conn:
            yield conn
            readiness.stamp(conn, time.time())

    def readiness(self) -> readiness.Readiness:
        """The readiness marker as committed."""
        return readiness.read(self.conn)

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
        dead: list[tuple[str, str, str, str | None, str | None, float, str | None]] = []
        for c in collapse(changes):
            if c.kind == "upsert":
                row = c.row
                if row is None:  # a Change not made by to_change (apply_item, tests)
                    try:
                        row = codec.row_values(spec, c.item or {})
                    except codec.CodecError as e:
                        dead.append((spec.name, shard_id, c.seq, str(e.message), None, now, key_text(c.key)))
                        continue
                rows.append(row)
                upserts.append(c)
            elif c.kind == "dead":
                dead.append((spec.name, shard_id, c.seq, c.reason, c.raw, now, key_text(c.key) if c.key else None))
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
        """Apply a consistent read of one item (`refresh`) in one transaction; it resolves the key's dead letters."""
        if item is None or codec.is_deleted(item):
            change = Change("delete", spec.name, key, "", version=codec.usable_version(item), hard=item is None)
        else:
            change = Change("upsert", spec.name, key, "", item=item, version=codec.usable_version(item))
        with self.transaction():  # resolve first: should this answer itself not apply, it is a new letter
            self.conn.execute(RESOLVE_DEAD_LETTERS, (time.time(), spec.name, key_text(key)))
            return self._apply(spec, [change], shadow=False, shard_id="")

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
        self.publish([Swap(spec, stream_arn, checkpoints, reason)])

    def publish(self, swaps: list[Swap]) -> None:
        """Replace each live table by its shadow, with its checkpoints, all in one transaction; the
        readiness marker turns complete in it if every table has now had a full sync."""
        now = time.time()
        with self.transaction():
            for s in swaps:
                self.conn.execute(f"DROP TABLE {q(s.spec.name)}")
                self.conn.execute(f"ALTER TABLE {q(SHADOW_PREFIX + s.spec.name)} RENAME TO {q(s.spec.name)}")
                self.conn.execute("DELETE FROM _sync_checkpoints WHERE table_name = ?", (s.spec.name,))
                self._write_checkpoints(s.checkpoints)
                self.conn.execute(
                    "INSERT OR REPLACE INTO _sync_tables (table_name, stream_arn, last_full_sync, full_sync_reason) "
                    "VALUES (?, ?, ?, ?)", (s.spec.name, s.stream_arn, now, s.reason))
            readiness.mark_complete_if_synced(self.conn, now)
        for s in swaps:
            self._stmts.pop(s.spec.name, None)

    def replace_business(self, business_id: str, items: dict[str, list[codec.Item]]) -> int:
        """Replace every row of one business in all five tables with `items`, in one transaction."""
        written = 0
        with self.transaction():
            for spec in TABLES.values():
                st = self._statements(spec)
                self.conn.execute(f"DELETE FROM {q(spec.name)} WHERE {q(spec.hash_key)} = ?", (business_id,))  # nosec
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


def _as_cache_error(e: sqlite3.Error, phase: str) -> CacheError:
    """What an SQLite error on the cache means for the operator."""
    text = str(e)
    if phase == "begin" and ("locked" in text or "busy" in text):
        return CacheBusy(f"the cache is locked by another connection: {text}",
                         hint="another process holds a write transaction; retrying")
    if "full" in text:
        return CacheError(f"the cache disk is full: {text}", hint="free space; the batch was rolled back")
    if "locked" in text or "busy" in text:
        return CacheBusy(f"the cache is locked: {text}")
    if "malformed" in text or "not a database" in text:
        return CacheCorrupt(f"the cache is corrupt: {text}")
    return CacheError(f"cache write failed: {text}")


