"""What the cache database holds, as plain Python: its SQL text, quoting, and row records.

Nothing here touches a connection (and by the layout rule only cache.py imports sqlite3); cache.py
runs these statements. Identifiers in SQL text come only from schema.py, quoted by `q`, and every
value is bound: hence the S608 (SQL built from strings) exemptions below.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_str  # json.dumps's C string encoder

from seo_sync import codec
from seo_sync.schema import EXTRA_COLUMN, TYPES_COLUMN, VERSION_ATTR, TableSpec

SHADOW_PREFIX = "_shadow_"
INSERT_DEAD_LETTER = ("INSERT INTO _sync_dead_letters (table_name, shard_id, sequence_number, reason, record, at, "
                      "key) VALUES (?, ?, ?, ?, ?, ?, ?)")
# Applying DynamoDB's answer for a key (a consistent read) resolves the dead letters of that key.
RESOLVE_DEAD_LETTERS = ("UPDATE _sync_dead_letters SET resolved_at = ? WHERE table_name = ? AND key = ? "
                        "AND resolved_at IS NULL")
# A tombstone keeps the highest version it has seen; a hard delete is remembered as such.
UPSERT_TOMBSTONE = (
    "INSERT INTO _sync_tombstones (table_name, key, version, hard, deleted_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (table_name, key) DO UPDATE SET version = CASE WHEN excluded.version IS NULL "
    "THEN version WHEN version IS NULL THEN excluded.version ELSE max(version, excluded.version) END, "
    "hard = excluded.hard, deleted_at = excluded.deleted_at")
# After an upsert (?1 table, ?2 key, ?3 version, ?4 is an INSERT): drop the tombstone it supersedes.
CLEAR_OLDER_TOMBSTONE = ("DELETE FROM _sync_tombstones WHERE table_name = ?1 AND key = ?2 "
                         "AND (version IS NULL OR ?3 IS NULL OR version < ?3 OR (hard AND ?4))")


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


def data_table_ddl(spec: TableSpec, name: str) -> str:
    """CREATE TABLE for one data table (live or shadow): keys, typed columns, `_version`, `_extra`, `_types`."""
    cols = [f"{q(k)} TEXT NOT NULL" for k in spec.key_names]
    cols += [f"{q(c.name)} {c.sql_type}".rstrip() for c in spec.columns]
    cols += [q(VERSION_ATTR), f"{q(EXTRA_COLUMN)} TEXT", f"{q(TYPES_COLUMN)} TEXT"]
    pk = ", ".join(q(k) for k in spec.key_names)
    return f"CREATE TABLE IF NOT EXISTS {q(name)} ({', '.join(cols)}, PRIMARY KEY ({pk})) WITHOUT ROWID"


class Statements:
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
        on_conflict = (f"ON CONFLICT ({pk}) DO UPDATE SET {updates} "  # nosec
                       f"WHERE excluded.{v} IS NULL OR {q(name)}.{v} IS NULL OR excluded.{v} >= {q(name)}.{v}")
        # Nor resurrect a deleted one: the row's tombstone must be older (or the hard delete
        # followed by an INSERT). Parameters: the row, then table name, key text, version, INSERT?.
        self.upsert = (
            f"INSERT INTO {q(name)} ({names}) SELECT {params} WHERE NOT EXISTS ("  # nosec
            f"SELECT 1 FROM _sync_tombstones WHERE table_name = {table_name} AND key = {key} "
            f"AND version IS NOT NULL AND {version} IS NOT NULL AND version >= {version} "
            f"AND NOT (hard AND {inserted})) {on_conflict}"
        )
        # The same when the table has no tombstone at all (the common case): one index probe less.
        self.upsert_untombstoned = f"INSERT INTO {q(name)} ({names}) VALUES ({params}) {on_conflict}"  # nosec
        self.plain_insert = f"INSERT OR REPLACE INTO {q(name)} ({names}) VALUES ({params})"  # nosec
        where_key = " AND ".join(f"{q(k)} = :k{i}" for i, k in enumerate(spec.key_names))
        self.where_key = where_key
        self.delete = f"DELETE FROM {q(name)} WHERE {where_key} AND (:v IS NULL OR {v} IS NULL OR {v} <= :v)"  # nosec
        self.newer_exists = f"SELECT 1 FROM {q(name)} WHERE {where_key} AND {v} > :v"  # nosec
        self.select_key = f"SELECT * FROM {q(name)} WHERE {where_key}"  # nosec


def key_text(key: tuple[str, ...]) -> str:
    """The tombstone key: the text json.dumps(list(key), ensure_ascii=False, separators=(",", ":")) gives."""
    return "[" + ",".join(_json_str(k) for k in key) + "]"


def item_text(item: codec.Item) -> str:
    """An unstorable scanned item as text for its dead letter (DynamoDB JSON when it converts)."""
    try:
        return json.dumps(codec.item_to_ddb_json(item))
    except (codec.CodecError, TypeError, ValueError, AttributeError):
        return json.dumps(item, default=repr)[:1_000_000]
