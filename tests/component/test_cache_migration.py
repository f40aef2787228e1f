"""A cache file of schema 1 is upgraded when the writer opens it: rows moved to the new form, no operator."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from seo_sync.cache.migrations import SCHEMA_VERSION
from seo_sync.cache.reader import Reader
from seo_sync.cache.sql import data_table_ddl
from seo_sync.cache.writer import Cache
from seo_sync.schema import TABLES

# What schema 1 wrote: a decimal as TEXT, a map holding a set moved whole to `_extra` (DynamoDB
# JSON), a 20-digit `_version` as TEXT, and a dead letter for a valid item with a string `_version`.
V1_INTERNAL = """
CREATE TABLE _sync_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE _sync_tables (table_name TEXT PRIMARY KEY, stream_arn TEXT, last_full_sync FLOAT, full_sync_reason TEXT);
CREATE TABLE _sync_checkpoints (table_name TEXT, shard_id TEXT, stream_arn TEXT, parent_shard_id TEXT,
    sequence_number TEXT, closed INTEGER, latest_as_of FLOAT, updated_at FLOAT, PRIMARY KEY (table_name, shard_id));
CREATE TABLE _sync_tombstones (table_name TEXT, key TEXT, version INTEGER, hard INTEGER, deleted_at FLOAT,
    PRIMARY KEY (table_name, key));
CREATE TABLE _sync_dead_letters (id INTEGER PRIMARY KEY, table_name TEXT, shard_id TEXT, sequence_number TEXT,
    reason TEXT, record TEXT, at FLOAT);
INSERT INTO _sync_meta VALUES ('schema_version', '1');
"""
SET_MAP = {"M": {"services": {"SS": ["gutter", "roof"]}, "years": {"N": "12"}}}


def write_v1_cache(path: Path) -> None:
    """A cache.db exactly as schema 1 left it, with data, checkpoints and a dead letter."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_INTERNAL)
    for spec in TABLES.values():
        conn.execute(data_table_ddl(spec, spec.name).replace(', "_types" TEXT', ""))
    conn.execute("INSERT INTO questionnaires (business_id, data, completeness_score, _version, _extra) "
                 "VALUES ('q1', NULL, '0.85', 3, ?)", (json.dumps({"data": {"M": {
                     "services": {"SS": ["gutter", "roof"]}, "years": {"N": "12"}}}}),))
    conn.execute("INSERT INTO questionnaires (business_id, data, completeness_score, _version) "
                 "VALUES ('q2', '{\"a\":1.50}', 1, '12345678901234567890')")
    conn.execute("INSERT INTO businesses (business_id, name, _version) VALUES ('b1', 'Acme', 2)")
    for table in ("businesses", "questionnaires"):
        conn.execute("INSERT INTO _sync_tables VALUES (?, 'arn:s', 1.0, 'boot')", (table,))
        conn.execute("INSERT INTO _sync_checkpoints VALUES (?, 'shard-1', 'arn:s', NULL, '100', 0, NULL, 1.0)",
                     (table,))
    conn.execute("INSERT INTO _sync_dead_letters (table_name, shard_id, sequence_number, reason, record, at) "
                 "VALUES ('businesses', 'shard-1', '99', '_version is not an integer: {''S'': ''7''}', '{}', 1.0)")
    conn.commit()
    conn.close()


def test_a_schema_1_cache_is_upgraded_in_place_on_open(tmp_path):
    """Numbers become REAL/INTEGER, a map with a set returns to its JSON column, items read back exact."""
    path = tmp_path / "cache.db"
    write_v1_cache(path)
    cache = Cache.open(path)
    conn = cache.conn
    version = conn.execute("SELECT value FROM _sync_meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION)
    row = conn.execute("SELECT data, completeness_score, typeof(completeness_score), _extra, _types "
                       "FROM questionnaires WHERE business_id = 'q1'").fetchone()
    assert json.loads(row[0]) == {"services": ["gutter", "roof"], "years": 12}
    assert row[1:4] == (0.85, "real", None) and json.loads(row[4]) == {"data": {"/services": "SS"}}
    cache.close()
    reader = Reader.open(path)
    q = TABLES["questionnaires"]
    assert reader.get(q, ("q1",)) == {"business_id": {"S": "q1"}, "data": SET_MAP,
                                      "completeness_score": {"N": "0.85"}, "_version": {"N": "3"}}
    assert reader.get(q, ("q2",)) == {"business_id": {"S": "q2"}, "data": {"M": {"a": {"N": "1.50"}}},
                                      "completeness_score": {"N": "1"}, "_version": {"N": "12345678901234567890"}}
    assert reader.get(TABLES["businesses"], ("b1",)) == {"business_id": {"S": "b1"}, "name": {"S": "Acme"},
                                                         "_version": {"N": "2"}}
    reader.close()


def test_a_table_with_schema_1_dead_letters_is_rebuilt_by_a_full_sync(tmp_path):
    """Its checkpoints go (the daemon full-syncs it at start), its old dead letters are resolved; others keep theirs."""
    path = tmp_path / "cache.db"
    write_v1_cache(path)
    cache = Cache.open(path)
    assert cache.checkpoints("businesses") == [] and len(cache.checkpoints("questionnaires")) == 1
    assert cache.dead_letter_count() == 0
    resolved = cache.conn.execute("SELECT count(*) FROM _sync_dead_letters WHERE resolved_at IS NOT NULL")
    assert resolved.fetchone()[0] == 1
    cache.close()
    again = Cache.open(path)  # opening an upgraded file changes nothing more
    assert len(again.checkpoints("questionnaires")) == 1 and again.count("questionnaires") == 2
    again.close()


def test_a_reader_of_a_schema_1_file_not_yet_upgraded_reads_the_same_items(tmp_path):
    """Read commands on an old file (no writer has opened it yet) give the exact items and count its letters."""
    path = tmp_path / "cache.db"
    write_v1_cache(path)
    reader = Reader.open(path)
    try:
        assert reader.get(TABLES["questionnaires"], ("q1",))["data"] == SET_MAP
        assert reader.dead_letter_count() == 1 and reader.dead_letter_count("questionnaires") == 0
    finally:
        reader.close()
