"""The cache database: the only writer of `cache.db`.

One writer at a time (an exclusive flock on `cache.db.lock`); readers open it read-only. A batch
of stream records, its dead letters and the shard checkpoint commit in one transaction, and
a full sync fills a shadow table that replaces the live one in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from seo_sync import codec
from seo_sync.cache import changelog, readiness, wal_files
from seo_sync.cache.apply import apply_changes, apply_truth, knows_key
from seo_sync.cache.connect import as_cache_error, atomic, private_dir, private_files
from seo_sync.cache.migrations import SCHEMA_VERSION, stored_version, upgrade
from seo_sync.cache.reader import Reader
from seo_sync.cache.scanned import ScannedPage, scanned_page
from seo_sync.cache.sql import (
    INSERT_DEAD_LETTER,
    MARKS_DDL,
    REPAIRS_DDL,
    RESOLVE_DEAD_LETTERS,
    SHADOW_PREFIX,
    ApplyResult,
    Statements,
    data_table_ddl,
    key_text,
    q,
)
from seo_sync.cache.swap import record_full_sync, swap_in
from seo_sync.changes import Change
from seo_sync.errors import CacheBusy, CacheCorrupt, CacheError
from seo_sync.feed import Checkpoint
from seo_sync.order import READ_WINDOW
from seo_sync.schema import TABLES, TableSpec

# How long a key's mark is kept (`expire_tombstones` drops older ones with the tombstones): the
# daemon sets it from [maintenance] tombstone_ttl_hours.
MARK_LIFETIME = 48 * 3600.0


class Swap(NamedTuple):
    """One shadow table to publish: its stream ARN and the checkpoints its rows are complete up to."""

    spec: TableSpec
    stream_arn: str | None
    checkpoints: list[Checkpoint]
    reason: str = ""


class Cache:
    """An open cache database (writer side). Use `Cache.open` under a WriterLock."""

    def __init__(self, conn: sqlite3.Connection, path: Path, keeper: sqlite3.Connection | None = None,
                 change_diff_limit: int = changelog.DEFAULT_DIFF_LIMIT) -> None:
        self.conn = conn
        self.change_diff_limit = change_diff_limit  # a swap changing more rows logs one reload instead
        self.path = path
        self._keeper = keeper  # read-only; closed after conn so that conn is never the last (wal_files)
        self.db = sqlite_utils.Database(conn)
        self._stmts: dict[str, Statements] = {}
        self.mark_lifetime = MARK_LIFETIME
        self.clock: Callable[[], float] = time.time  # epoch seconds of swaps and of the marks' floor
        self._swapped: dict[str, float] = {}

    # -- lifecycle --------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, busy_timeout_ms: int = 5000, check: bool = True,
             change_diff_limit: int = changelog.DEFAULT_DIFF_LIMIT) -> Cache:
        """Open (creating and migrating) the cache at `path`; CacheCorrupt if it fails quick_check.

        `change_diff_limit`: a full sync's swap that changes more rows than this logs one `reload`
        of the table rather than each key (cache/changelog.py).

        The file keeps WAL mode, -wal and -shm for its whole life, for readers (cache/wal_files.py).
        """
        try:
            private_dir(path.parent)
        except OSError as e:
            raise CacheError(f"cannot create the data directory {path.parent}: {e.strerror or e}",
                             hint="it must be a directory the service user may write") from None
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
        cache = cls(conn, path, keeper, change_diff_limit)
        cache.migrate()
        private_files(path)  # a file left readable to all by an earlier version, or by a umask
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
            self.conn.execute(MARKS_DDL)
            self.conn.execute(REPAIRS_DDL)
            self.conn.execute("DELETE FROM _sync_marks WHERE table_name LIKE ?", (SHADOW_PREFIX + "%",))
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
        with atomic(self.conn, as_cache_error) as conn:
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
                    *, shadow: bool = False, shard_id: str = "", ordered: bool = True) -> ApplyResult:
        """Apply one batch and move its checkpoint, in one transaction; replaying it is a no-op.

        `ordered`: the records come in each item's order (DynamoDB Streams); False for a feed
        without per-item order, whose records are ordered by creation time (order.py).
        """
        with self.transaction():
            result = self._apply(spec, changes, shadow=shadow, shard_id=shard_id, ordered=ordered)
            if checkpoint is not None:
                self._write_checkpoints([checkpoint])
        return result

    def _apply(self, spec: TableSpec, changes: list[Change], *, shadow: bool, shard_id: str,
               ordered: bool = True, read_floor: float | None = None) -> ApplyResult:
        name = SHADOW_PREFIX + spec.name if shadow else spec.name
        floor = None if ordered or shadow else self.floor(spec.name)
        return apply_changes(self.conn.cursor(), spec, self._statements(spec, name), name, changes,
                             shard_id=shard_id, ordered=ordered, read_floor=read_floor, floor=floor)

    def floor(self, table: str) -> float:
        """Epoch seconds from which every state of a live table carries a mark (order.py, case 3): its
        last swap (the shadow's rows carry none of their own) or the oldest mark not yet expired."""
        swapped = self._swapped.get(table)
        if swapped is None:
            row = self.conn.execute("SELECT last_full_sync FROM _sync_tables WHERE table_name = ?", (table,)).fetchone()
            swapped = self._swapped[table] = float(row[0]) if row is not None and row[0] is not None else 0.0
        return max(swapped, self.clock() - self.mark_lifetime + READ_WINDOW)

    def apply_item(self, spec: TableSpec, key: tuple[str, ...], item: codec.Item | None,
                   read_at: float | None = None) -> ApplyResult:
        """Apply a consistent read of one item as the truth (`refresh`, a repair read), in one transaction.

        `read_at` is when the read was sent (default: now); a stream record older than it is
        refused later. It resolves the key's dead letters.
        """
        if item is None and not knows_key(self.conn.cursor(), spec, self._statements(spec), key):
            return ApplyResult(records=1)  # absent there, unknown here: not even a commit (the WAL stays)
        with self.transaction():
            self.conn.execute(RESOLVE_DEAD_LETTERS, (time.time(), spec.name, key_text(key)))
            return apply_truth(self.conn.cursor(), spec, self._statements(spec), key, item,
                               time.time() if read_at is None else read_at)

    def row(self, spec: TableSpec, key: tuple[str, ...]) -> tuple[Any, ...] | None:
        """The cache row of one key (None when absent)."""
        found = self.conn.execute(self._statements(spec).select_key,
                                  {f"k{i}": k for i, k in enumerate(key)}).fetchone()
        return None if found is None else tuple(found)

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
            self.conn.execute("DELETE FROM _sync_marks WHERE table_name = ?", (name,))
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

    def apply_to_shadow(self, spec: TableSpec, changes: list[Change], shard_id: str = "",
                        ordered: bool = True, read_floor: float | None = None) -> ApplyResult:
        """Apply stream records captured during a full sync to the shadow table (one transaction).

        `read_floor` (a feed without per-item order): epoch seconds no later than the Scan that
        filled the shadow read any row; a row with no mark counts as read from DynamoDB then.
        """
        with self.transaction():
            return self._apply(spec, changes, shadow=True, shard_id=shard_id, ordered=ordered, read_floor=read_floor)

    def swap_shadow(self, spec: TableSpec, stream_arn: str | None, checkpoints: list[Checkpoint],
                    reason: str = "") -> None:
        """Replace the live table by its shadow and its checkpoints, in one transaction."""
        self.publish([Swap(spec, stream_arn, checkpoints, reason)])

    def publish(self, swaps: list[Swap]) -> None:
        """Replace each live table by its shadow, with its checkpoints, all in one transaction; the
        readiness marker turns complete in it if every table has now had a full sync."""
        now = self.clock()
        with self.transaction():
            for s in swaps:
                swap_in(self.conn, s.spec, now, self.change_diff_limit)
                self.conn.execute("DELETE FROM _sync_checkpoints WHERE table_name = ?", (s.spec.name,))
                self._write_checkpoints(s.checkpoints)
                record_full_sync(self.conn, s.spec.name, s.stream_arn, s.reason, now)
            readiness.mark_complete_if_synced(self.conn, now)
        for s in swaps:
            self._stmts.pop(s.spec.name, None)
            self._swapped[s.spec.name] = now

    def replace_business(self, business_id: str, items: dict[str, list[codec.Item]],
                         read_at: float | None = None) -> int:
        """Replace every row of one business in all five tables with `items` (a consistent Query, sent
        at `read_at`), in one transaction: each key is applied as the truth and marked as read."""
        at = time.time() if read_at is None else read_at
        written = 0
        with self.transaction():
            cur = self.conn.cursor()
            for spec in TABLES.values():
                st = self._statements(spec)
                cols = ", ".join(q(k) for k in spec.key_names)
                held = {tuple(r) for r in cur.execute(
                    f"SELECT {cols} FROM {q(spec.name)} WHERE {q(spec.hash_key)} = ?", (business_id,))}  # nosec
                found = {spec.key_of_item(it): it for it in items.get(spec.name, [])}
                for key, it in found.items():
                    written += apply_truth(cur, spec, st, key, it, at).upserted
                for key in held - found.keys():  # gone from DynamoDB
                    apply_truth(cur, spec, st, key, None, at)
        return written

    # -- maintenance -----------------------------------------------------------------------------

    def expire_tombstones(self, older_than: float) -> int:
        """Drop tombstones written before `older_than` (epoch seconds), and marks as old: no feed holds
        a record that old any more."""
        with self.transaction():
            self.conn.execute("DELETE FROM _sync_marks WHERE at < ?", (older_than,))
            dropped = self.conn.execute("DELETE FROM _sync_tombstones WHERE deleted_at < ?", (older_than,)).rowcount
        # The file gives back the pages they held (auto_vacuum = INCREMENTAL). executescript steps the
        # pragma to its end: a single step (execute) frees one page only.
        try:
            self.conn.executescript("PRAGMA incremental_vacuum;")
        except sqlite3.Error as e:
            raise as_cache_error(e, "commit") from None
        return dropped

    def trim_changes(self, older_than: float, max_rows: int) -> int:
        """Drop change-log entries committed before `older_than` (epoch seconds) and all but the newest
        `max_rows`; readers behind what is dropped are told to reload."""
        with self.transaction():
            return changelog.trim(self.conn, older_than, max_rows)

    def wal_checkpoint(self) -> tuple[int, int, int]:
        """A WAL checkpoint that never holds readers up, truncating a WAL a reader let grow (wal_files.py)."""
        return wal_files.checkpoint(self.conn, self.path)

    def quick_check(self) -> str:
        """PRAGMA quick_check: 'ok' or the first problem."""
        return str(self.conn.execute("PRAGMA quick_check").fetchone()[0])

    # -- reads (the writer's own view) ------------------------------------------------------------

    def count(self, table: str) -> int:
        """Rows in one cache table."""
        return Reader(self.conn).count(table)

    def keys(self, spec: TableSpec) -> list[tuple[str, ...]]:
        """Every key one cache table holds."""
        cols = ", ".join(q(k) for k in spec.key_names)
        return [tuple(r) for r in self.conn.execute(f"SELECT {cols} FROM {q(spec.name)}")]  # nosec

    def pending_repairs(self) -> list[tuple[str, tuple[str, ...], str, float | None]]:
        """(table, key, reason, since) of every key waiting for a repair read: those a batch asked for,
        and every unresolved dead letter that names its item; `since` is when it was first recorded."""
        rows = self.conn.execute(
            "SELECT table_name, key, reason, at FROM _sync_repairs UNION ALL SELECT table_name, key, 'dead letter', "
            "MIN(at) FROM _sync_dead_letters WHERE resolved_at IS NULL AND key IS NOT NULL "
            "GROUP BY table_name, key").fetchall()
        return [(r[0], tuple(json.loads(r[1])), r[2] or "stream", r[3]) for r in rows]

    def dead_letter_count(self, table: str | None = None) -> int:
        """Dead letters recorded (for one table, or all)."""
        return Reader(self.conn).dead_letter_count(table)
