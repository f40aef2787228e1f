"""Read-only queries over the cache, for the generation server, the CLI and the writer's own view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seo_sync import codec
from seo_sync.cache import changelog
from seo_sync.cache.connect import Connection, connect_read_only
from seo_sync.cache.sql import Statements, q
from seo_sync.errors import CacheBusy, CacheCorrupt, CacheError
from seo_sync.schema import TABLES, TableSpec


class Reader:
    """Read-only queries over a cache connection; each multi-statement read is one snapshot."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, path: Path) -> Reader:
        """Open the cache read-only (the way the generation server and read commands do)."""
        if not path.exists():
            raise CacheError(f"no cache at {path}", hint="run `seo-sync sync-from-dynamo` or start the daemon")
        return cls(connect_read_only(path))

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def snapshot(self) -> _Snapshot:
        """`with reader.snapshot():` hold one read transaction across several statements."""
        return _Snapshot(self.conn)

    def count(self, table: str) -> int:
        """Rows in one cache table (schema names only)."""
        spec = TABLES[table]
        return int(self.conn.execute(f"SELECT count(*) FROM {q(spec.name)}").fetchone()[0])  # nosec

    def dead_letter_count(self, table: str | None = None) -> int:
        """Unresolved dead letters (for one table, or all): health is degraded while there are any."""
        where, args = ("", ()) if table is None else (" AND table_name = ?", (table,))
        try:
            return int(self.conn.execute("SELECT count(*) FROM _sync_dead_letters WHERE resolved_at IS NULL"  # nosec
                                         + where, args).fetchone()[0])
        except self.conn.OperationalError:  # a file of schema 1, not yet upgraded by the writer: none resolved
            return int(self.conn.execute("SELECT count(*) FROM _sync_dead_letters WHERE 1" + where,  # nosec
                                         args).fetchone()[0])

    def rows(self, spec: TableSpec, business_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Rows of one table in key order, optionally of one business."""
        order = ", ".join(q(k) for k in spec.key_names)
        sql = f"SELECT * FROM {q(spec.name)}"  # nosec
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
        st = Statements(spec, spec.name)
        cur = self.conn.execute(st.select_key, {f"k{i}": k for i, k in enumerate(key)})
        row = cur.fetchone()
        if row is None:
            return None
        return codec.row_to_item(spec, dict(zip([d[0] for d in cur.description], row, strict=True)))

    def changes(self, cursor: int, table: str | None = None, limit: int = 1000) -> changelog.Page:
        """Change-log entries after `cursor` (cache/changelog.py), read in one snapshot.

        CacheBusy while the writer holds a lock or the WAL index waits for the writer to rebuild it
        (the reader contract's two retryable states): retry.
        """
        try:
            with self.snapshot():
                return changelog.since(self.conn, cursor, table, limit)
        except self.conn.OperationalError as e:
            text = str(e)
            if "no such table" in text:
                raise CacheError("this cache has no change log", hint="the daemon that writes it predates "
                                 "the change log; upgrade it") from None
            if "locked" in text or "busy" in text or "readonly" in text:
                raise CacheBusy(f"the cache is busy: {text}") from None
            raise

    def changes_floor(self) -> int:
        """The lowest cursor the change log still serves in full (everything it holds is after it)."""
        return changelog.floor_of(self.conn)

    def data_version(self) -> int:
        """Changes whenever another connection commits (PRAGMA data_version): what a follower polls.

        CacheBusy while the WAL index waits for the writer to rebuild it."""
        try:
            return changelog.data_version(self.conn)
        except self.conn.OperationalError as e:
            raise CacheBusy(f"the cache is busy: {e}") from None

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
        except self.conn.DatabaseError as e:  # sqlite3's, via the connection
            raise CacheCorrupt(f"not a readable SQLite database: {e}") from None
        missing = [t for t in (*TABLES, "_sync_tables") if t not in names]
        if missing:
            raise CacheError(f"not a seo-sync cache: tables missing: {', '.join(missing)}",
                             hint="name a cache.db written by seo-sync")


class _Snapshot:
    """One read transaction across several statements."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        self.conn.execute("BEGIN")
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
