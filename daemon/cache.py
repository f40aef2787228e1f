"""The cache database: the only writer of `cache.db`.

One writer at a time (an exclusive flock on `cache.db.lock`); readers open it read-only. A batch
of stream records, its dead letters and the shard checkpoint commit in one transaction (D1), and
a full sync fills a shadow table that replaces the live one in one transaction (D5).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_str  # json.dumps's C string encoder
from pathlib import Path
from typing import Any

import sqlite_utils

from daemon import codec
from daemon.changes import Change, collapse
from daemon.errors import CacheBusy, CacheCorrupt, CacheError, LockHeld
from daemon.schema import EXTRA_COLUMN, TABLES, VERSION_ATTR, TableSpec

SCHEMA_VERSION = 1
SHADOW_PREFIX = "_shadow_"


def q(identifier: str) -> str:
    """Quote an identifier that comes from schema.py (never from data)."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass
class Checkpoint:
    """Where one shard has been read to, committed with the rows it produced."""

    table: str
    stream_arn: str
    shard_id: str
    parent_shard_id: str | None = None
    sequence_number: str | None = None  # last applied; None = "at LATEST as of latest_as_of"
    closed: bool = False  # read to its end
    latest_as_of: float | None = None
    updated_at: float = field(default_factory=time.time)


@dataclass
class ApplyResult:
    """What one batch did."""

    upserted: int = 0
    deleted: int = 0
    skipped_stale: int = 0
    dead: int = 0
    ttl_deletes: int = 0
    records: int = 0


class WriterLock:
    """The exclusive writer lock on `<cache>.lock` (a separate file, never the DB itself: D10)."""

    def __init__(self, cache_path: Path) -> None:
        self.path = Path(str(cache_path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        """Take the lock or raise LockHeld naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: flock needs no write access, so a cache reader able to open this file could hold the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = None
            try:
                holder = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            except (OSError, ValueError):
                pass
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockHeld(
                    f"the cache {self.path.parent} is locked by another seo-sync process"
                    + (f" (pid {holder})" if holder else ""),
                    hint="stop the daemon (systemctl stop seo-sync) or use its socket commands",
                    pid=holder,
                ) from None
            raise
        with contextlib.suppress(OSError):  # a lock file left 0640 by an older version
            os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _data_table_ddl(spec: TableSpec, name: str) -> str:
    cols = [f"{q(k)} TEXT NOT NULL" for k in spec.key_names]
    cols += [f"{q(c.name)} {c.sql_type}".rstrip() for c in spec.columns]
    cols += [q(VERSION_ATTR), f"{q(EXTRA_COLUMN)} TEXT"]
    pk = ", ".join(q(k) for k in spec.key_names)
    return f"CREATE TABLE IF NOT EXISTS {q(name)} ({', '.join(cols)}, PRIMARY KEY ({pk})) WITHOUT ROWID"


class _Statements:
    """The SQL of one data table (live or shadow), built once from schema.py.

    Row parameters are positional (?1..?n in spec.column_names order), so a row is bound straight
    from the tuple codec.row_values returns, with no dict of named parameters per record.
    """

    def __init__(self, spec: TableSpec, name: str) -> None:
        cols = spec.column_names
        names = ", ".join(q(c) for c in cols)
        params = ", ".join(f"?{i}" for i in range(1, len(cols) + 1))
        pk = ", ".join(q(k) for k in spec.key_names)
        updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in cols if c not in spec.key_names)
        v = q(VERSION_ATTR)
        n = len(cols)
        table_name, key, version, inserted = (f"?{n + i}" for i in range(1, 5))
        # Never regress a row: an update must not lower `_version`.
        on_conflict = (f"ON CONFLICT ({pk}) DO UPDATE SET {updates} "
                       f"WHERE excluded.{v} IS NULL OR {q(name)}.{v} IS NULL OR excluded.{v} >= {q(name)}.{v}")
        # Nor resurrect a deleted one: the row's tombstone must be older (or the hard delete
        # followed by an INSERT). Parameters: the row, then table name, key text, version, INSERT?.
        self.upsert = (
            f"INSERT INTO {q(name)} ({names}) SELECT {params} WHERE NOT EXISTS ("  # nosec B608
            f"SELECT 1 FROM _sync_tombstones WHERE table_name = {table_name} AND key = {key} "
            f"AND version IS NOT NULL AND {version} IS NOT NULL AND version >= {version} "
            f"AND NOT (hard AND {inserted})) {on_conflict}"
        )
        # The same when the table has no tombstone at all (the common case): one index probe less.
        self.upsert_untombstoned = f"INSERT INTO {q(name)} ({names}) VALUES ({params}) {on_conflict}"  # nosec B608
        self.plain_insert = f"INSERT OR REPLACE INTO {q(name)} ({names}) VALUES ({params})"  # nosec B608
        where_key = " AND ".join(f"{q(k)} = :k{i}" for i, k in enumerate(spec.key_names))
        self.where_key = where_key
        self.delete = f"DELETE FROM {q(name)} WHERE {where_key} AND (:v IS NULL OR {v} IS NULL OR {v} <= :v)"  # nosec B608
        self.newer_exists = f"SELECT 1 FROM {q(name)} WHERE {where_key} AND {v} > :v"  # nosec B608
        self.select_key = f"SELECT * FROM {q(name)} WHERE {where_key}"  # nosec B608


def _key_text(key: tuple[str, ...]) -> str:
    """The tombstone key: the text json.dumps(list(key), ensure_ascii=False, separators=(",", ":")) gives."""
    return "[" + ",".join(_json_str(k) for k in key) + "]"


class Cache:
    """An open cache database (writer side). Use `Cache.open` under a WriterLock."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)
        self._stmts: dict[str, _Statements] = {}

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
            if not _wal_mode_without_shm(self.path):
                return
            conn = sqlite3.connect(self.path, isolation_level=None)
            _leave_rollback_journal(conn)
            conn.close()

    def migrate(self) -> None:
        """Create the internal and data tables if missing; drop leftover shadows of a killed sync."""
        with self.transaction():
            db = self.db
            db["_sync_meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db["_sync_tables"].create(
                {"table_name": str, "stream_arn": str, "last_full_sync": float, "full_sync_reason": str},
                pk="table_name", if_not_exists=True)
            db["_sync_checkpoints"].create(
                {"table_name": str, "shard_id": str, "stream_arn": str, "parent_shard_id": str,
                 "sequence_number": str, "closed": int, "latest_as_of": float, "updated_at": float},
                pk=("table_name", "shard_id"), if_not_exists=True)
            db["_sync_tombstones"].create(
                {"table_name": str, "key": str, "version": int, "hard": int, "deleted_at": float},
                pk=("table_name", "key"), if_not_exists=True)
            db["_sync_dead_letters"].create(
                {"id": int, "table_name": str, "shard_id": str, "sequence_number": str, "reason": str,
                 "record": str, "at": float}, pk="id", if_not_exists=True)
            for spec in TABLES.values():
                self.conn.execute(_data_table_ddl(spec, spec.name))
                self.conn.execute(f"DROP TABLE IF EXISTS {q(SHADOW_PREFIX + spec.name)}")
            self.conn.execute(
                "INSERT OR REPLACE INTO _sync_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def transaction(self) -> _Transaction:
        """`with cache.transaction():` BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception."""
        return _Transaction(self.conn)

    def _statements(self, spec: TableSpec, name: str | None = None) -> _Statements:
        name = name or spec.name
        if name not in self._stmts:
            self._stmts[name] = _Statements(spec, name)
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
        deletes, dead = [], []
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
                deletes.append((c, _key_text(c.key)))
        cur = self.conn.cursor()
        if rows:
            # Inside this write transaction the answer cannot change under us.
            tombstoned = cur.execute("SELECT EXISTS (SELECT 1 FROM _sync_tombstones WHERE table_name = ?)",
                                     (spec.name,)).fetchone()[0]
            if tombstoned:
                guards = [(spec.name, _key_text(c.key), c.version, int(c.event == "INSERT")) for c in upserts]
                cur.executemany(st.upsert, [r + g for r, g in zip(rows, guards, strict=True)])
            else:
                cur.executemany(st.upsert_untombstoned, rows)
            res.upserted = max(cur.rowcount, 0)
            res.skipped_stale += len(rows) - res.upserted
            if tombstoned:
                cur.executemany(
                    "DELETE FROM _sync_tombstones WHERE table_name = ?1 AND key = ?2 "
                    "AND (version IS NULL OR ?3 IS NULL OR version < ?3 OR (hard AND ?4))", guards)
        for c, kt in deletes:
            keyp = {f"k{i}": k for i, k in enumerate(c.key)}
            if c.version is not None and cur.execute(st.newer_exists, {**keyp, "v": c.version}).fetchone():
                res.skipped_stale += 1
                continue
            cur.execute(st.delete, {**keyp, "v": c.version})
            res.deleted += 1
            cur.execute(
                "INSERT INTO _sync_tombstones (table_name, key, version, hard, deleted_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (table_name, key) DO UPDATE SET version = CASE WHEN excluded.version IS NULL "
                "THEN version WHEN version IS NULL THEN excluded.version ELSE max(version, excluded.version) END, "
                "hard = excluded.hard, deleted_at = excluded.deleted_at",
                (spec.name, kt, c.version, int(c.hard), now))
        if dead:
            cur.executemany(
                "INSERT INTO _sync_dead_letters (table_name, shard_id, sequence_number, reason, record, at) "
                "VALUES (?, ?, ?, ?, ?, ?)", dead)
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
            self.conn.execute(_data_table_ddl(spec, name))

    def drop_shadow(self, spec: TableSpec) -> None:
        """Drop the shadow table of an abandoned full sync."""
        with self.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {q(SHADOW_PREFIX + spec.name)}")

    def insert_scanned(self, spec: TableSpec, items: list[codec.Item]) -> int:
        """Insert one batch of scanned items into the shadow table; returns rows written.

        Items that cannot be stored (bad key) go to dead letters in the same transaction.
        """
        st = self._statements(spec, SHADOW_PREFIX + spec.name)
        rows, dead, now = [], [], time.time()
        for it in items:
            if codec.is_deleted(it):
                continue
            try:
                rows.append(codec.row_values(spec, it))
            except codec.CodecError as e:
                dead.append((spec.name, "scan", "", str(e.message), _item_text(it), now))
        with self.transaction():
            self.conn.executemany(st.plain_insert, rows)
            if dead:
                self.conn.executemany(
                    "INSERT INTO _sync_dead_letters (table_name, shard_id, sequence_number, reason, record, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", dead)
        return len(rows)

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


def _item_text(item: codec.Item) -> str:
    """An unstorable scanned item as text for its dead letter (DynamoDB JSON when it converts)."""
    try:
        return json.dumps(codec.item_to_ddb_json(item))
    except (codec.CodecError, TypeError, ValueError, AttributeError):
        return json.dumps(item, default=repr)[:1_000_000]


def _leave_rollback_journal(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error:
        pass  # busy (a reader is connected) or disk full: the WAL files stay, readers still work


def _wal_mode_without_shm(path: Path) -> bool:
    """True when the header says WAL but -shm is gone: a read-only reader could not open the file."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18:20] == b"\x02\x02" and not Path(f"{path}-shm").exists()


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


class Reader:
    """Read-only queries over a cache connection; each multi-statement read is one snapshot."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, path: Path) -> Reader:
        """Open the cache read-only (the way the generation server and read commands do)."""
        if not path.exists():
            raise CacheError(f"no cache at {path}", hint="run `seo-sync sync-from-dynamo` or start the daemon")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return cls(conn)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def snapshot(self) -> _Snapshot:
        """`with reader.snapshot():` hold one read transaction across several statements."""
        return _Snapshot(self.conn)

    def count(self, table: str) -> int:
        """Rows in one cache table (schema names only)."""
        spec = TABLES[table]
        return int(self.conn.execute(f"SELECT count(*) FROM {q(spec.name)}").fetchone()[0])  # nosec B608

    def dead_letter_count(self, table: str | None = None) -> int:
        """Dead letters recorded (for one table, or all)."""
        if table is None:
            return int(self.conn.execute("SELECT count(*) FROM _sync_dead_letters").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM _sync_dead_letters WHERE table_name = ?",
                                     (table,)).fetchone()[0])

    def rows(self, spec: TableSpec, business_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Rows of one table in key order, optionally of one business."""
        order = ", ".join(q(k) for k in spec.key_names)
        sql = f"SELECT * FROM {q(spec.name)}"  # nosec B608
        args: tuple[Any, ...] = ()
        if business_id is not None:
            sql += f" WHERE {q(spec.hash_key)} = ?"
            args = (business_id,)
        cur = self.conn.execute(sql + f" ORDER BY {order}", args)
        names = [d[0] for d in cur.description]
        for r in cur:
            yield dict(zip(names, r, strict=True))

    def items(self, spec: TableSpec, business_id: str | None = None) -> Iterator[codec.Item]:
        """The DynamoDB items the cache holds for one table, in key order."""
        for row in self.rows(spec, business_id):
            yield codec.row_to_item(spec, row)

    def get(self, spec: TableSpec, key: tuple[str, ...]) -> codec.Item | None:
        """One item by key, or None."""
        st = _Statements(spec, spec.name)
        cur = self.conn.execute(st.select_key, {f"k{i}": k for i, k in enumerate(key)})
        row = cur.fetchone()
        if row is None:
            return None
        return codec.row_to_item(spec, dict(zip([d[0] for d in cur.description], row, strict=True)))

    def table_states(self) -> dict[str, dict[str, Any]]:
        """Per table: stream_arn, last_full_sync, full_sync_reason."""
        out = {}
        for r in self.conn.execute("SELECT table_name, stream_arn, last_full_sync, full_sync_reason FROM _sync_tables"):
            out[r[0]] = {"stream_arn": r[1], "last_full_sync": r[2], "full_sync_reason": r[3]}
        return out

    def check_shape(self) -> None:
        """Raise CacheError unless this is a readable cache database with all five data tables."""
        try:
            names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise CacheCorrupt(f"not a readable SQLite database: {e}") from None
        missing = [t for t in (*TABLES, "_sync_tables") if t not in names]
        if missing:
            raise CacheError(f"not a seo-sync cache: tables missing: {', '.join(missing)}",
                             hint="name a cache.db written by seo-sync")


class _Snapshot:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN")
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("COMMIT")
