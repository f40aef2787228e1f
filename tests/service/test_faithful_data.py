"""The running daemon caches every item DynamoDB accepts, as DynamoDB holds it: odd `_version`s,
numbers that compare as numbers, sets inside JSON columns; dead letters counted from the table;
`refresh` keys as JSON objects, bad ones a clear error."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.control.client import request
from seo_sync.errors import BadInput, ExitCode
from seo_sync.schema import TABLES
from tests.support.harness import Daemon, wait_until

BUSINESSES, QUESTIONNAIRES, TEMPLATES = TABLES["businesses"], TABLES["questionnaires"], TABLES["prompt_templates"]


def cached(data_dir: Path, spec: Any, key: tuple[str, ...]) -> codec.Item | None:
    """One item as the cache holds it (read-only)."""
    reader = Reader.open(data_dir / "cache.db")
    try:
        return reader.get(spec, key)
    finally:
        reader.close()


def holds(data_dir: Path, spec: Any, item: codec.Item) -> bool:
    """True when the cache holds exactly `item` (same canonical content)."""
    got = cached(data_dir, spec, tuple(item[k]["S"] for k in spec.key_names))
    return got is not None and codec.item_hash(got) == codec.item_hash(item)


def query(data_dir: Path, sql: str) -> list[tuple]:
    """Rows of one query on a read-only connection, as a reader would run it."""
    conn = sqlite3.connect(f"file:{data_dir / 'cache.db'}?mode=ro", uri=True, timeout=5.0)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_an_item_with_a_string_or_decimal_version_is_cached_and_its_updates_follow(seeded, start_daemon):
    """_version {"S": "7"} or {"N": "2.5"}: cached by the full sync, the stream and refresh, never a dead letter."""
    scanned = {"business_id": {"S": "sv0"}, "name": {"S": "Before the start"}, "_version": {"S": "x1"}}
    seeded.put_item(BUSINESSES, scanned)
    d = start_daemon()
    d.wait_ready()
    assert holds(d.data_dir, BUSINESSES, scanned)
    s_item = {"business_id": {"S": "sv1"}, "name": {"S": "String version"}, "_version": {"S": "7"}}
    n_item = {"business_id": {"S": "nv1"}, "name": {"S": "Decimal version"}, "_version": {"N": "2.5"}}
    seeded.put_item(BUSINESSES, s_item)
    seeded.put_item(BUSINESSES, n_item)
    wait_until(lambda: holds(d.data_dir, BUSINESSES, s_item) and holds(d.data_dir, BUSINESSES, n_item),
               what="both items cached from the stream")
    newer = {**s_item, "name": {"S": "String version, renamed"}, "_version": {"S": "8"}}
    seeded.put_item(BUSINESSES, newer)
    wait_until(lambda: holds(d.data_dir, BUSINESSES, newer), what="the update of the S-version item")
    answer = d.request('refresh businesses {"business_id": "nv1"}')
    assert answer["ok"] is True and answer["present"] is True and answer["version"] is None
    assert holds(d.data_dir, BUSINESSES, n_item)
    assert sum(t["dead_letters"] for t in d.status()["tables"].values()) == 0
    assert d.request("health")["ok"] is True


def add_dead_letters(data_dir: Path, table: str, key: list[str], n: int) -> None:
    """Dead letters of one key, as an earlier run of the daemon would have left them."""
    conn = sqlite3.connect(data_dir / "cache.db")
    rows = [(table, str(100 + i), time.time(), json.dumps(key, separators=(",", ":"))) for i in range(n)]
    with conn:
        if "key" not in {r[1] for r in conn.execute("PRAGMA table_info(_sync_dead_letters)")}:
            rows = [r[:3] for r in rows]  # a cache of schema 1 (no key column): the same letters without it
        conn.executemany(f"INSERT INTO _sync_dead_letters (table_name, shard_id, sequence_number, reason, record, at"
                         f"{', key' if len(rows[0]) == 4 else ''}) VALUES (?, 'shard-x', ?, 'test letter', '{{}}', ?"
                         f"{', ?' if len(rows[0]) == 4 else ''})", rows)
    conn.close()


def metrics_text(d: Daemon) -> str:
    """The raw `metrics` answer (Prometheus text, not JSON)."""
    return request(d.socket_path, "metrics")


def dead_letters(d: Daemon) -> int:
    """The daemon's dead-letter count over all tables, from its status."""
    return sum(t["dead_letters"] for t in d.status()["tables"].values())


def test_dead_letters_are_counted_from_the_table_across_a_restart_and_a_repair_read_resolves_them(
        seeded, start_daemon, tmp_path):
    """3 letters of one key left in _sync_dead_letters: the repair read of that key at start resolves them; 2
    letters without a key stay, counted by status and metrics, and health is degraded while they are there."""
    first = start_daemon()
    first.wait_ready()
    first.signal(15)
    assert first.wait_exit() == 0
    add_dead_letters(tmp_path / "data", "businesses", ["biz-001"], 3)
    conn = sqlite3.connect(tmp_path / "data" / "cache.db")
    with conn:
        conn.executemany("INSERT INTO _sync_dead_letters (table_name, shard_id, sequence_number, reason, record, at) "
                         "VALUES ('businesses', 'shard-x', ?, 'no usable key', '{}', 0)", [("200",), ("201",)])
    conn.close()
    d = start_daemon()
    d.wait_ready()
    wait_until(lambda: dead_letters(d) == 2, what="the keyed letters resolved, the 2 keyless ones counted")
    assert d.status()["repairs"]["by_reason"].get("dead letter") == 1
    assert 'seo_sync_table_dead_letters{table="businesses"} 2' in metrics_text(d).splitlines()
    health = d.request("health")
    assert health["ok"] is False and any("dead letters" in r for r in health["reasons"])
    rows = query(d.data_dir, "SELECT count(*) FROM _sync_dead_letters WHERE key IS NOT NULL AND resolved_at IS NULL")
    assert rows == [(0,)]


def test_numbers_compare_as_numbers_from_full_sync_and_stream(seeded, start_daemon):
    """completeness_score 0.3 0.5 (full sync) 0.85 0.95 1 (stream): < 0.9, max() and ORDER BY are numeric."""
    scores = {"biz-000": "0.3", "biz-001": "0.5"}
    for bid, score in scores.items():
        seeded.put_item(QUESTIONNAIRES, {"business_id": {"S": bid}, "completeness_score": {"N": score}})
    d = start_daemon()
    d.wait_ready()
    streamed = {"biz-002": "0.85", "biz-003": "0.95", "biz-004": "1"}
    for bid, score in streamed.items():
        seeded.put_item(QUESTIONNAIRES, {"business_id": {"S": bid}, "completeness_score": {"N": score}})
    wait_until(lambda: query(d.data_dir, "SELECT count(*) FROM questionnaires WHERE completeness_score IS NOT NULL")
               == [(5,)], what="five scores cached")
    below = query(d.data_dir, "SELECT business_id FROM questionnaires WHERE completeness_score < 0.9 ORDER BY 1")
    assert [r[0] for r in below] == ["biz-000", "biz-001", "biz-002"]
    above = query(d.data_dir, "SELECT business_id FROM questionnaires WHERE completeness_score > 0.9 ORDER BY 1")
    assert [r[0] for r in above] == ["biz-003", "biz-004"]
    assert query(d.data_dir, "SELECT max(completeness_score) FROM questionnaires") == [(1,)]
    top = query(d.data_dir, "SELECT business_id FROM questionnaires WHERE completeness_score IS NOT NULL "
                            "ORDER BY completeness_score DESC")
    assert [r[0] for r in top] == ["biz-004", "biz-003", "biz-002", "biz-001", "biz-000"]
    assert cached(d.data_dir, QUESTIONNAIRES, ("biz-002",))["completeness_score"] == {"N": "0.85"}


def test_a_nested_set_keeps_data_parseable_and_a_string_set_is_a_json_array(seeded, start_daemon):
    """A set and binary inside `data`, a string-set required_variables: JSON columns, not NULL, items exact."""
    d = start_daemon()
    d.wait_ready()
    questionnaire = {"business_id": {"S": "biz-005"}, "data": {"M": {
        "services": {"SS": ["roof repair", "gutters"]}, "logo": {"B": b"\x89PNG"},
        "hours": {"L": [{"M": {"days": {"NS": ["1", "2"]}}}]}}}}
    template = {"business_id": {"S": "biz-005"}, "template_id": {"S": "service#3"},
                "required_variables": {"SS": ["city", "business_name"]}}
    seeded.put_item(QUESTIONNAIRES, questionnaire)
    seeded.put_item(TEMPLATES, template)
    wait_until(lambda: holds(d.data_dir, QUESTIONNAIRES, questionnaire) and holds(d.data_dir, TEMPLATES, template),
               what="both items cached exactly")
    ((data, extra),) = query(d.data_dir, "SELECT data, _extra FROM questionnaires WHERE business_id = 'biz-005'")
    assert json.loads(data) == {"services": ["gutters", "roof repair"], "logo": "iVBORw==",
                                "hours": [{"days": [1, 2]}]} and extra is None
    ((required,),) = query(d.data_dir, "SELECT required_variables FROM prompt_templates "
                                       "WHERE business_id = 'biz-005' AND template_id = 'service#3'")
    assert json.loads(required) == ["business_name", "city"]


def test_refresh_takes_a_json_object_key_and_bad_keys_are_clear_errors(seeded: Source, start_daemon):
    """An object or list key refreshes; not JSON, wrong attributes or table: BadInput (65), never an internal error."""
    d = start_daemon()
    d.wait_ready()
    ok = d.request('refresh keywords {"business_id": "biz-000", "keyword_id": "kw1#en"}')
    assert ok["ok"] is True and ok["present"] is True and ok["key"] == ["biz-000", "kw1#en"]
    assert d.request('refresh keywords ["biz-000", "kw1#en"]')["present"] is True
    for bad in ("refresh businesses b1", 'refresh keywords {"business_id": "b1"}',
                'refresh nosuchtable {"business_id": "b1"}', "refresh businesses"):
        answer = json.loads(request(d.socket_path, bad))
        assert answer["ok"] is False and answer["kind"] == "BadInput", (bad, answer)
        assert answer["exit_code"] == ExitCode.DATAERR and answer.get("hint"), (bad, answer)
    try:
        d.request("refresh businesses b1")
    except BadInput as e:
        assert "not JSON" in e.message
    else:
        raise AssertionError("a key that is not JSON was accepted")
    assert "control_handler_failed" not in d.log() and "Traceback" not in d.log()
    assert isinstance(d.status()["wal_bytes"], int)
    # The fast response path checked itself against this botocore and is on (aws/raw_check.py).
    assert d.status()["fast_responses"]["on"] is True, d.status()["fast_responses"]
    assert "seo_sync_wal_bytes " in metrics_text(d)
