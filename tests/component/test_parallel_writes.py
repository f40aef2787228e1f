"""Identical writes and deletes of one item at the same moment, as from parallel CLI runs: one lands,
the others say honestly that another writer's did (a delete: one backup and one charge in all)."""

from __future__ import annotations

import threading

import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.writer import Cache
from seo_sync.errors import NotFound
from seo_sync.protection import backups
from seo_sync.protection.ledger import CONFIRM_TOKEN, Ledger
from seo_sync.schema import KEYWORDS, TABLES
from seo_sync.write_path.profiles import ProfileStore

T0 = 1_790_000_000.0 + 60
PARALLEL = 5
KEY = ("acme", "roof-repair#en")
ITEM = codec.item_from_python({"business_id": "acme", "keyword_id": "roof-repair#en", "keyword": "roof repair",
                               "language": "en"})


@pytest.fixture
def stores(settings):
    """PARALLEL write paths with their own DynamoDB clients and ledger connections, like parallel runs."""
    first = Source(settings.aws, settings.table_prefix)
    for spec in TABLES.values():
        first.create_table(spec)
    Cache.open(settings.cache_path).close()
    return [ProfileStore(settings, Source(settings.aws, settings.table_prefix), clock=lambda: T0, retry_delay=0.01)
            for _ in range(PARALLEL)]


def _together(stores, method: str, run) -> list[object]:
    """Run `run(store)` on every store at once, each held at a barrier after its source's `method`
    (so every one has read, or is about to write, before any goes on); the results or exceptions."""
    barrier = threading.Barrier(len(stores))
    for store in stores:
        real, calls = getattr(store.source, method), []

        def held(*args, _real=real, _calls=calls, **kwargs):
            _calls.append(1)
            if len(_calls) > 1:  # only the first call is held (a delete's later refresh reads too)
                return _real(*args, **kwargs)
            if method == "put_item":
                barrier.wait(30)
                return _real(*args, **kwargs)
            out = _real(*args, **kwargs)
            barrier.wait(30)
            return out

        setattr(store.source, method, held)
    results: list[object] = [None] * len(stores)

    def one(i: int) -> None:
        try:
            results[i] = run(stores[i])
        except Exception as e:  # collected for the asserts
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_parallel_deletes_of_one_item_delete_it_once_with_one_backup_and_one_charge(stores, settings):
    """Five deletes that all read the live keyword: one succeeds; four say a parallel delete did it, and
    leave no backup and no charge of their own."""
    stores[0].create(KEYWORDS, ITEM)
    results = _together(stores, "get_item", lambda s: s.delete(KEYWORDS, KEY, confirm=CONFIRM_TOKEN))
    done = [r for r in results if isinstance(r, list)]
    lost = [r for r in results if isinstance(r, NotFound)]
    assert len(done) == 1 and len(lost) == PARALLEL - 1, results
    assert all("parallel delete" in e.message for e in lost)
    [[winner]] = done
    assert [b.path for b in backups.list_backups(settings.backup_dir)] == [winner.backup]
    ledger = Ledger(settings.protection_path)
    assert ledger.used("keyword", T0) == 1
    assert ledger.outcomes() == {winner.backup.name: "deleted"}


def test_identical_parallel_puts_do_not_claim_an_earlier_attempt_of_theirs_landed(stores):
    """Five identical creates at once: one writes; the other four say another writer's identical item was
    there, and none claims an earlier attempt of its own had landed."""
    results = _together(stores, "put_item", lambda s: s.create(KEYWORDS, ITEM))
    assert not any(isinstance(r, Exception) for r in results), results
    assert not any(r.landed_on_retry for r in results)
    already = [r for r in results if r.extra.get("already_written")]
    assert len(already) == PARALLEL - 1
    assert all("another writer" in (r.note or "") for r in already)
    assert all(r.version == 1 for r in results)
