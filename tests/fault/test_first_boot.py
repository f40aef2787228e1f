"""A first boot publishes the five tables together, complete, with a readiness marker.

The engine runs over FakeStreams with all five tables; a reader thread reads the cache file through
examples/reader.py (read-only, one snapshot per read) and is made to look between every Scan page
of every table, so it sees each state a first boot can show.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from seo_sync import codec
from seo_sync.cache.writer import Cache
from seo_sync.schema import TABLES
from seo_sync.sync.engine import Engine
from tests.support.engine_threads import EngineThreads
from tests.support.fake_streams import FakeWorld, create_tables, fake_source
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)
ITEMS = 6  # per table; with pages of 2 items, three Scan pages per table
_spec = importlib.util.spec_from_file_location(
    "reader_example", Path(__file__).resolve().parents[2] / "examples" / "reader.py")
assert _spec and _spec.loader
reader_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reader_example)


def _item(table: str, i: int) -> dict[str, Any]:
    spec = TABLES[table]
    values = {"business_id": f"b{i}", "keyword_id": f"k{i}#en", "area_id": f"a{i}", "template_id": f"home#{i}"}
    return codec.item_from_python({k: values[k] for k in spec.key_names} | {"_version": 1})


@pytest.fixture
def world() -> FakeWorld:
    """All five tables, ITEMS items each."""
    w = FakeWorld()
    create_tables(w)
    for name, spec in TABLES.items():
        for i in range(ITEMS):
            w.put(spec.dynamo_name(), _item(name, i))
    return w


class Observer(threading.Thread):
    """Reads the readiness marker and every table's row count from one snapshot, again and again."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.conn = reader_example.connect(path)
        self.seen: list[tuple[bool, dict[str, int]]] = []
        self.halt = threading.Event()

    def look(self) -> tuple[bool, dict[str, int]]:
        """(complete, rows per table) as one committed state."""
        return reader_example.read(self.conn, lambda c: (reader_example.readiness_in(c)["complete"],
                                                         reader_example.counts_in(c)))

    def run(self) -> None:
        while not self.halt.is_set():
            self.seen.append(self.look())
            self.halt.wait(0.002)

    def looks_after(self, n: int, timeout: float = 10.0) -> None:
        """Block until the observer has taken a look after it had `n` (fails after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.seen) <= n + 1:
            assert time.monotonic() < deadline and self.is_alive(), "the observer stopped looking"
            time.sleep(0.001)


def test_a_reader_of_a_first_boot_sees_nothing_or_all_five_tables_complete(world, tmp_path):
    """Looking between every Scan page, a reader sees either no complete marker and empty tables, or
    the marker complete and all five tables full; never one table published before the others."""
    settings = make_settings(tmp_path / "data", None, fullsync={"batch_size": 2, "scan_segments": 1},
                             stream={"idle_poll_interval": 0.05})
    cache = Cache.open(settings.cache_path)
    observer = Observer(settings.cache_path)
    observer.start()
    world.scan_hook = lambda table, page: observer.looks_after(len(observer.seen))
    engine = Engine(settings, fake_source(world), cache, clock=world.clock)
    try:
        with EngineThreads(engine):
            assert engine.boot_synced.wait(30)
            observer.looks_after(len(observer.seen))
    finally:
        observer.halt.set()
        observer.join(10)
        cache.close()
    full = {name: ITEMS for name in TABLES}
    empty = {name: 0 for name in TABLES}
    partial = [s for s in observer.seen if s not in ((False, empty), (True, full))]
    assert not partial, partial[:3]
    assert (False, empty) in observer.seen and observer.seen[-1] == (True, full)
    assert len(observer.seen) > 3 * len(TABLES)  # it looked during every table's Scan


def test_the_marker_tells_when_complete_and_how_fresh(world, tmp_path):
    """completed_at is set by the publishing commit; last_commit_at moves with every applied batch."""
    settings = make_settings(tmp_path / "data", None, stream={"idle_poll_interval": 0.05})
    cache = Cache.open(settings.cache_path)
    assert cache.readiness().complete is False and cache.readiness().completed_at is None
    engine = Engine(settings, fake_source(world), cache, clock=world.clock)
    with EngineThreads(engine):
        assert engine.boot_synced.wait(30)
        first = engine.submit(lambda c: c.readiness())
        assert first.complete and first.completed_at is not None and first.last_commit_at >= first.completed_at
        world.put("seo_businesses", codec.item_from_python({"business_id": "new", "_version": 1}))
        wait_for(lambda: engine.submit(lambda c: c.readiness()).last_commit_at > first.last_commit_at, 10,
                 "a newer commit")
        assert engine.submit(lambda c: c.count("businesses")) == ITEMS + 1
    cache.close()
