"""What the cache database holds, as plain Python: its SQL text, quoting, and row records.

Nothing here touches a connection (only cache/ imports sqlite3, by the layout rule); connect.py,
writer.py and reader.py run these statements. Identifiers in SQL text come only from schema.py, quoted by `q`, and every
value is bound: hence the S608 (SQL built from strings) exemptions below.
"""

from __future__ import annotations

import json
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
# A tombstone records a delete (its version, whether it was a hard one, when); it guards nothing
# itself: who is newer is settled by the order of the feed and by the key's mark (order.py).
UPSERT_TOMBSTONE = (
    "INSERT INTO _sync_tombstones (table_name, key, version, hard, deleted_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (table_name, key) DO UPDATE SET version = excluded.version, hard = excluded.hard, "
    "deleted_at = excluded.deleted_at")
ANY_TOMBSTONE = "SELECT EXISTS (SELECT 1 FROM _sync_tombstones WHERE table_name = ?)"
CLEAR_TOMBSTONE = "DELETE FROM _sync_tombstones WHERE table_name = ? AND key = ?"
# One mark per key whose state came from a direct read of DynamoDB, or from an unordered feed's
# last record: what a later record is compared with (order.py). The table name is the physical one
# (a shadow's marks move with it at the swap).
MARKS_DDL = ("CREATE TABLE IF NOT EXISTS _sync_marks (table_name TEXT NOT NULL, key TEXT NOT NULL, "
             "version INTEGER, at REAL, origin TEXT NOT NULL, present INTEGER NOT NULL, "
             "PRIMARY KEY (table_name, key)) WITHOUT ROWID")
# Keys waiting for a repair read, written in the transaction that found the doubt, so that a crash
# never forgets one; a consistent read of the key applied as the truth removes it.
REPAIRS_DDL = ("CREATE TABLE IF NOT EXISTS _sync_repairs (table_name TEXT NOT NULL, key TEXT NOT NULL, "
               "reason TEXT, at REAL, PRIMARY KEY (table_name, key)) WITHOUT ROWID")
INSERT_REPAIR = "INSERT OR IGNORE INTO _sync_repairs (table_name, key, reason, at) VALUES (?, ?, ?, ?)"
DELETE_REPAIR = "DELETE FROM _sync_repairs WHERE table_name = ? AND key = ?"
ANY_MARK = "SELECT EXISTS (SELECT 1 FROM _sync_marks WHERE table_name = ?)"
SELECT_MARK = "SELECT version, at, origin, present FROM _sync_marks WHERE table_name = ? AND key = ?"
UPSERT_MARK = ("INSERT OR REPLACE INTO _sync_marks (table_name, key, version, at, origin, present) "
               "VALUES (?, ?, ?, ?, ?, ?)")
DELETE_MARK = "DELETE FROM _sync_marks WHERE table_name = ? AND key = ?"


def q(identifier: str) -> str:
    """Quote an identifier that comes from schema.py (never from data)."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass
class ApplyResult:
    """What one batch did."""

    upserted: int = 0
    deleted: int = 0
    skipped_stale: int = 0  # records refused as older than what the cache holds
    dead: int = 0
    ttl_deletes: int = 0
    records: int = 0
    repair: list[tuple[str, ...]] = field(default_factory=list)  # keys to read again from DynamoDB


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
        # No version check here: who is newer is decided before a row gets this far (order.py).
        self.upsert = f"INSERT OR REPLACE INTO {q(name)} ({names}) VALUES ({params})"  # nosec
        self.plain_insert = self.upsert
        where_key = " AND ".join(f"{q(k)} = :k{i}" for i, k in enumerate(spec.key_names))
        self.where_key = where_key
        self.delete = f"DELETE FROM {q(name)} WHERE {where_key}"  # nosec
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
