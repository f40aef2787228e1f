"""The write path against moto's HTTP server: versioned writes, races, protected deletes, restore, cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import botocore.exceptions as bexc
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.errors import BadInput, ProtectionRefused, RateLimited, SourceUnavailable, VersionMismatch
from seo_sync.protection import backups
from seo_sync.protection.ledger import CONFIRM_TOKEN, Ledger
from seo_sync.schema import BUSINESSES, KEYWORDS, QUESTIONNAIRES, TABLES
from seo_sync.write_path import profiles
from seo_sync.write_path.profiles import ProfileStore
from tests.support.settings import make_settings
from tests.support.strategies import attribute_values

T0 = 1_790_000_000.0 + 60


@pytest.fixture
def source(settings):
    src = Source(settings.aws, settings.table_prefix)
    for spec in TABLES.values():
        src.create_table(spec)
    Cache.open(settings.cache_path).close()  # an existing cache, no daemon: the direct refresh path
    return src


@pytest.fixture
def store(settings, source):
    return ProfileStore(settings, source, clock=lambda: T0, retry_delay=0.01)


def _cached(settings, spec, key):
    reader = Reader.open(settings.cache_path)
    try:
        return reader.get(spec, key)
    finally:
        reader.close()


def _sample(spec, bid="acme", n=0):
    """A small plain item of `spec`, keyed under business `bid`."""
    base = {"business_id": bid, "created_at": "2026-01-01T00:00:00Z"}
    if spec.range_key:
        base[spec.range_key] = f"k{n}#en"
    if spec is QUESTIONNAIRES:
        base["data"] = {"services": ["drains", "heaters"], "years": 12}
    else:
        base["name" if spec is BUSINESSES else "city" if spec.name == "service_areas" else "template"
             if spec.name == "prompt_templates" else "keyword"] = f"value {n}"
    return codec.item_from_python(base)


def test_create_sets_version_1_and_each_update_adds_one_for_all_five_types(store, source, settings):
    """Every entity type is stamped `_version` 1 on create and +1 on update; the cache follows at once."""
    for spec in TABLES.values():
        item = _sample(spec)
        key = spec.key_of_item(item)
        created = store.create(spec, item)
        assert created.version == 1 and created.cache == "direct"
        assert source.get_item(spec, key)["_version"] == {"N": "1"}
        updated = store.update(spec, {**item, "created_at": {"S": "changed"}}, expected_version=1)
        assert updated.version == 2
        assert source.get_item(spec, key)["_version"] == {"N": "2"}
        cached = _cached(settings, spec, key)
        assert cached is not None and cached["_version"] == {"N": "2"} and cached["created_at"] == {"S": "changed"}


def _race(stores: list[ProfileStore], version: int, label: str) -> list[object]:
    """Two writers update the same business from the same version at the same moment."""
    barrier = threading.Barrier(len(stores))
    outcomes: list[object] = [None] * len(stores)

    def write(i: int) -> None:
        item = {**_sample(BUSINESSES), "name": {"S": f"writer {i} {label}"}}
        barrier.wait()
        try:
            outcomes[i] = stores[i].update(BUSINESSES, item, expected_version=version)
        except VersionMismatch as e:
            outcomes[i] = e

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_writers_racing_on_one_business_exactly_one_wins(settings, source):
    """Two writers with their own clients update the same version at once: one wins, one gets the winner's item."""
    ProfileStore(settings, source).create(BUSINESSES, _sample(BUSINESSES))
    for round_no in range(5):
        stores = [ProfileStore(settings, Source(settings.aws, settings.table_prefix)) for _ in range(2)]
        outcomes = _race(stores, round_no + 1, f"round {round_no}")
        wins = [o for o in outcomes if isinstance(o, profiles.WriteResult)]
        losses = [o for o in outcomes if isinstance(o, VersionMismatch)]
        assert len(wins) == 1 and len(losses) == 1
        current = source.get_item(BUSINESSES, ("acme",))
        assert losses[0].current == current and current["_version"] == {"N": str(round_no + 2)}


def _timeout_after_landing(source, before_retry=None):
    """Make the first PutItem reach DynamoDB and then fail as a read timeout (the answer was lost)."""
    real = source.ddb.put_item
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        result = real(**kwargs)
        if len(calls) == 1:
            if before_retry:
                before_retry()
            raise bexc.ReadTimeoutError(endpoint_url=source.endpoint)
        return result

    source.ddb.put_item = flaky
    return calls


def test_a_retry_after_a_timeout_whose_write_landed_is_not_a_false_conflict(store, source):
    """The write landed but its answer was lost; the retry's conflict shows our own item, so it succeeds."""
    store.create(BUSINESSES, _sample(BUSINESSES))
    calls = _timeout_after_landing(source)
    result = store.update(BUSINESSES, {**_sample(BUSINESSES), "name": {"S": "new"}}, expected_version=1)
    assert len(calls) == 2 and result.landed_on_retry and result.version == 2
    assert source.get_item(BUSINESSES, ("acme",))["_version"] == {"N": "2"}


def test_a_retry_after_a_timeout_still_reports_a_real_conflict(store, source, settings):
    """If someone else wrote between our landed attempt and the retry, the retry is a real conflict."""
    store.create(BUSINESSES, _sample(BUSINESSES))
    other = ProfileStore(settings, Source(settings.aws, settings.table_prefix))
    _timeout_after_landing(source, before_retry=lambda: other.update(
        BUSINESSES, {**_sample(BUSINESSES), "name": {"S": "other"}}, expected_version=2))
    with pytest.raises(VersionMismatch) as exc:
        store.update(BUSINESSES, {**_sample(BUSINESSES), "name": {"S": "mine"}}, expected_version=1)
    assert exc.value.current["name"] == {"S": "other"} and exc.value.current["_version"] == {"N": "3"}


def test_when_dynamodb_fails_nothing_else_happens(tmp_path, settings, source, store):
    """An unreachable DynamoDB fails the write with a reason; the cache is not touched."""
    store.create(BUSINESSES, _sample(BUSINESSES))
    down = make_settings(settings.data_dir, "http://127.0.0.1:9", aws={"endpoint_url": "http://127.0.0.1:9",
                                                                     "region": "us-east-1", "max_attempts": 1,
                                                                     "connect_timeout": 1})
    broken = ProfileStore(down, attempts=1)
    with pytest.raises(SourceUnavailable, match="cannot connect"):
        broken.update(BUSINESSES, {**_sample(BUSINESSES), "name": {"S": "lost"}}, expected_version=1)
    assert _cached(settings, BUSINESSES, ("acme",))["name"] == {"S": "value 0"}


def test_a_delete_backs_up_soft_deletes_and_leaves_the_cache_at_once(store, source, settings):
    """Token → ledger → backup → `_deleted: true` with `_version` + 1 → row gone from the cache."""
    store.create(KEYWORDS, _sample(KEYWORDS))
    key = ("acme", "k0#en")
    assert _cached(settings, KEYWORDS, key) is not None
    [result] = store.delete(KEYWORDS, key, confirm=CONFIRM_TOKEN, reason="duplicate keyword")
    item = source.get_item(KEYWORDS, key)
    assert item["_deleted"] == {"BOOL": True} and item["_version"] == {"N": "2"} and result.version == 2
    assert _cached(settings, KEYWORDS, key) is None
    backup = backups.read_backup(result.backup)
    assert backup.reason == "duplicate keyword" and backup.version == 1 and "_deleted" not in backup.item
    assert Ledger(settings.protection_path).used("keyword", T0) == 1
    assert Ledger(settings.protection_path).outcomes() == {result.backup.name: "deleted"}


def test_a_delete_that_loses_a_race_changes_nothing_and_gives_its_slot_back(store, source, settings, monkeypatch):
    """The item changed between our read and the soft delete: conflict, item intact, backup kept, slot refunded."""
    store.create(BUSINESSES, _sample(BUSINESSES))
    stale = source.get_item(BUSINESSES, ("acme",))
    store.update(BUSINESSES, {**_sample(BUSINESSES), "name": {"S": "newer"}}, expected_version=1)
    monkeypatch.setattr(source, "get_item", lambda spec, key, consistent=True: stale)
    with pytest.raises(VersionMismatch, match="backup kept"):
        store.delete(BUSINESSES, ("acme",), confirm=CONFIRM_TOKEN)
    monkeypatch.undo()
    assert source.get_item(BUSINESSES, ("acme",))["name"] == {"S": "newer"}
    ledger = Ledger(settings.protection_path)
    assert ledger.used("business", T0) == 0 and list(ledger.outcomes().values()) == ["conflict"]


def test_a_delete_whose_outcome_is_unknown_keeps_its_slot_counted(store, source, settings, monkeypatch):
    """DynamoDB times out on every attempt: the error says so, and the slot stays counted (fail closed)."""
    store.create(BUSINESSES, _sample(BUSINESSES))

    def timeout(**kwargs):
        raise bexc.ReadTimeoutError(endpoint_url=source.endpoint)

    monkeypatch.setattr(source.ddb, "put_item", timeout)
    with pytest.raises(SourceUnavailable) as exc:
        store.delete(BUSINESSES, ("acme",), confirm=CONFIRM_TOKEN)
    assert "may or may not have landed" in str(exc.value)
    ledger = Ledger(settings.protection_path)
    assert ledger.used("business", T0) == 1 and list(ledger.outcomes().values()) == ["unknown"]


def test_a_delete_without_the_token_changes_nothing(store, source, settings):
    """No token: refused before the ledger, the backup dir and DynamoDB are touched."""
    store.create(BUSINESSES, _sample(BUSINESSES))
    with pytest.raises(ProtectionRefused):
        store.delete(BUSINESSES, ("acme",), confirm="yes")
    assert not codec.is_deleted(source.get_item(BUSINESSES, ("acme",)))
    assert not settings.backup_dir.exists() and Ledger(settings.protection_path).used("business", T0) == 0


def test_hostile_business_ids_are_rejected_by_writes_and_deletes(store, source):
    """An id that could escape the backup directory never reaches DynamoDB or a file name."""
    for bad_id in ["../../etc/passwd", "/abs", "a\0b", "x" * 65, "caf\u00e9", "a.b", ".."]:
        with pytest.raises(BadInput):
            store.delete(BUSINESSES, (bad_id,), confirm=CONFIRM_TOKEN)
        with pytest.raises(BadInput):
            store.create(BUSINESSES, {**_sample(BUSINESSES), "business_id": {"S": bad_id}})
    assert list(next(iter(source.scan(BUSINESSES)))) == []


def test_the_eleventh_delete_in_an_hour_is_refused_even_after_a_restart(settings, source):
    """Ten keyword deletes pass, the 11th is refused untouched; a fresh process still refuses it."""
    store = ProfileStore(settings, source, clock=lambda: T0)
    source.batch_write(KEYWORDS, [{**_sample(KEYWORDS, n=i), "_version": {"N": "1"}} for i in range(11)])
    for i in range(10):
        store.delete(KEYWORDS, ("acme", f"k{i}#en"), confirm=CONFIRM_TOKEN)
    with pytest.raises(RateLimited, match="reopens at"):
        store.delete(KEYWORDS, ("acme", "k10#en"), confirm=CONFIRM_TOKEN)
    restarted = ProfileStore(settings, Source(settings.aws, settings.table_prefix), clock=lambda: T0 + 1800)
    with pytest.raises(RateLimited):
        restarted.delete(KEYWORDS, ("acme", "k10#en"), confirm=CONFIRM_TOKEN)
    assert not codec.is_deleted(source.get_item(KEYWORDS, ("acme", "k10#en")))
    assert len(backups.list_backups(settings.backup_dir)) == 10


def test_cascade_deletes_a_business_and_everything_of_it_each_with_a_backup(store, source, settings):
    """--cascade soft-deletes questionnaire, keywords, areas, templates and the business, backing up each."""
    for spec in TABLES.values():
        store.create(spec, _sample(spec))
    store.create(KEYWORDS, _sample(KEYWORDS, n=1))
    store.create(KEYWORDS, _sample(KEYWORDS, bid="other", n=1))
    results = store.delete(BUSINESSES, ("acme",), confirm=CONFIRM_TOKEN, cascade=True)
    assert [r.table for r in results][-1] == "businesses" and len(results) == 6
    assert len(backups.list_backups(settings.backup_dir, business_id="acme")) == 6
    for r in results:
        assert codec.is_deleted(source.get_item(TABLES[r.table], r.key))
        assert _cached(settings, TABLES[r.table], r.key) is None
    assert not codec.is_deleted(source.get_item(KEYWORDS, ("other", "k1#en")))
    assert Ledger(settings.protection_path).used("keyword", T0) == 2


def test_restore_puts_the_item_back_and_refuses_to_overwrite_a_live_change(store, source, settings):
    """Restore un-deletes with a higher `_version`; again is a no-op; a live, changed item is not overwritten."""
    store.create(BUSINESSES, _sample(BUSINESSES))
    original = source.get_item(BUSINESSES, ("acme",))
    [deleted] = store.delete(BUSINESSES, ("acme",), confirm=CONFIRM_TOKEN)
    restored = profiles.restore_from_backup(deleted.backup, settings)
    now = source.get_item(BUSINESSES, ("acme",))
    assert restored.version == 3 and now["_version"] == {"N": "3"} and "_deleted" not in now
    assert {k: v for k, v in now.items() if k != "_version"} == {k: v for k, v in original.items() if k != "_version"}
    assert _cached(settings, BUSINESSES, ("acme",))["name"] == original["name"]
    assert store.restore(deleted.backup).extra == {"already_restored": True}
    store.update(BUSINESSES, {**_sample(BUSINESSES), "name": {"S": "renamed"}}, expected_version=3)
    with pytest.raises(VersionMismatch, match="is live"):
        store.restore(deleted.backup)
    assert source.get_item(BUSINESSES, ("acme",))["name"] == {"S": "renamed"}


def test_items_written_without_a_version_are_updated_and_deleted_as_version_0(store, source):
    """A row from a writer that does not stamp `_version` counts as 0: updates and deletes still work."""
    source.put_item(BUSINESSES, _sample(BUSINESSES))
    assert store.update(BUSINESSES, _sample(BUSINESSES), expected_version=0).version == 1
    source.put_item(KEYWORDS, _sample(KEYWORDS))
    [r] = store.delete(KEYWORDS, ("acme", "k0#en"), confirm=CONFIRM_TOKEN)
    assert r.version == 1 and codec.is_deleted(source.get_item(KEYWORDS, ("acme", "k0#en")))


def test_a_held_lock_without_a_daemon_keeps_the_write_and_says_the_stream_will_bring_it(store, source, settings):
    """The cache is locked but nobody answers on the socket: the DynamoDB write stands, the note says so."""
    with WriterLock(settings.cache_path):
        result = store.create(BUSINESSES, _sample(BUSINESSES))
    assert result.cache == "pending" and "locked" in result.note and "stream" in result.note
    assert source.get_item(BUSINESSES, ("acme",))["_version"] == {"N": "1"}


def test_a_running_daemon_is_asked_to_refresh_through_its_socket(store, source, monkeypatch):
    """With a daemon answering, the write path sends `refresh <table> <key-json>` and never opens the cache."""
    sent = []
    monkeypatch.setattr(profiles, "request_json", lambda path, cmd, timeout=5.0: sent.append(cmd) or {"ok": True})
    result = store.create(KEYWORDS, codec.item_from_python({"business_id": "acme", "keyword_id": "plumber#en"}))
    assert result.cache == "daemon"
    assert sent == ['refresh keywords ["acme", "plumber#en"]']
    assert json.loads(sent[0].split(" ", 2)[2]) == ["acme", "plumber#en"]


_names = st.text(min_size=1, max_size=10).filter(lambda n: n not in ("business_id", "_version", "_deleted"))


def _no_empty_map_keys(av: codec.AttributeValue) -> bool:
    """DynamoDB (and moto) refuse empty names inside maps too."""
    ((t, v),) = av.items()
    if t == "M":
        return all(k and _no_empty_map_keys(x) for k, x in v.items())
    if t == "L":
        return all(_no_empty_map_keys(x) for x in v)
    return True


@given(attrs=st.dictionaries(_names, attribute_values.filter(_no_empty_map_keys), max_size=5))
@hsettings(max_examples=15, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_delete_then_restore_gives_back_the_identical_item_over_all_types(settings, source, attrs):
    """Whatever the attribute types (Decimal-exact N, sets, binary, nesting), restore returns the same item."""
    store = ProfileStore(settings, source, clock=lambda: T0)
    Ledger(settings.protection_path).reset(T0 + 7200)  # each example is one delete; keep the hour open
    before = {**{k: codec.canonical(v) for k, v in attrs.items()}, "business_id": {"S": "prop"}}
    source.put_item(BUSINESSES, {**before, "_version": {"N": "5"}})
    stored = source.get_item(BUSINESSES, ("prop",))
    [deleted] = store.delete(BUSINESSES, ("prop",), confirm=CONFIRM_TOKEN)
    assert codec.item_hash(backups.read_backup(deleted.backup).item) == codec.item_hash(stored)
    store.restore(deleted.backup)
    after = source.get_item(BUSINESSES, ("prop",))
    assert after["_version"] == {"N": "7"}
    assert codec.item_hash({**after, "_version": stored["_version"]}) == codec.item_hash(stored)
    for path in settings.backup_dir.iterdir():
        Path(path).unlink()


def test_with_the_real_daemon_running_writes_and_deletes_show_in_the_cache_at_once(tmp_path, dynamo_endpoint):
    """Against a running `seo-sync run`: the write path refreshes through its socket; no waiting for the stream."""
    from tests.support.harness import Daemon, seed

    seed(dynamo_endpoint, tmp_path / "seed", businesses=2)
    daemon = Daemon(dynamo_endpoint, tmp_path / "data")
    try:
        daemon.wait_ready()
        settings = make_settings(tmp_path / "data", dynamo_endpoint, socket=daemon.socket_path)
        store = ProfileStore(settings)
        created = store.create(KEYWORDS, codec.item_from_python({"business_id": "biz-000", "keyword_id": "new#en"}))
        assert created.cache == "daemon"
        assert _cached(settings, KEYWORDS, ("biz-000", "new#en"))["_version"] == {"N": "1"}
        [deleted] = store.delete(BUSINESSES, ("biz-001",), confirm=CONFIRM_TOKEN)
        assert deleted.cache == "daemon" and _cached(settings, BUSINESSES, ("biz-001",)) is None
    finally:
        daemon.close()
