"""fullsync.py against FakeStreams: capture before copy, spill, swap, abort, readers never see a drop."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from seo_sync.cache.reader import Reader
from seo_sync.config import FullSyncSettings, StreamSettings
from seo_sync.errors import FullSyncAborted, SeoSyncError
from seo_sync.feed import Checkpoint
from seo_sync.schema import BUSINESSES
from seo_sync.sync import fullsync
from seo_sync.sync.capture import Spill
from seo_sync.sync.fullsync import full_sync_table
from seo_sync.sync.tailer import TableTailer
from seo_sync.sync.writer import apply_batch
from tests.support.fake_streams import fake_source, put
from tests.support.items import cache_items, world_items
from tests.support.waiting import wait_for

TABLE = "seo_businesses"
FS = FullSyncSettings(scan_segments=3, batch_size=20, spill_threshold=100)
STREAM = StreamSettings(idle_poll_interval=0.05)




def sync(cache, world, **kw):
    return full_sync_table(cache, fake_source(world), BUSINESSES, kw.pop("settings", FS),
                           stream_settings=STREAM, **kw)


def test_writes_during_full_sync_are_all_in_the_cache(world, cache):
    """Puts, updates and deletes made while the Scan runs are captured and applied before the swap."""
    for i in range(300):
        put(world, i)
    state = {"n": 0}

    def hook(table, _):
        n = state["n"] = state["n"] + 1
        put(world, 1000 + n, version=1)  # new item
        put(world, n % 300, version=2, name="updated")  # update, maybe already scanned
        world.delete(TABLE, (f"b{(n * 7) % 300:04d}",))  # delete, maybe already scanned

    world.scan_hook = hook
    result = sync(cache, world, reason="test")
    assert state["n"] > 10 and result.stream_records > 0
    assert cache_items(cache) == world_items(world)
    cps = cache.checkpoints("businesses")
    assert len(cps) == 1 and cps[0].sequence_number is not None
    assert cache.table_state("businesses")["stream_arn"] == world.stream(TABLE).arn


def test_stream_records_past_spill_threshold_are_spilled_and_applied_in_order(world, cache):
    """More captured records than spill_threshold go to disk and still apply in stream order."""
    for i in range(50):
        put(world, i)

    def hook(table, _):
        for v in range(40):
            put(world, v % 10, version=100 + v + len(world.calls))

    world.scan_hook = hook
    result = sync(cache, world)
    assert result.stream_records > FS.spill_threshold
    assert cache_items(cache) == world_items(world)


def test_spill_keeps_memory_bounded_and_round_trips_bytes_and_times():
    """Spill holds fewer than `threshold` records in memory and returns all in order, losslessly."""
    spill = Spill(100)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    recs = [{"dynamodb": {"SequenceNumber": str(i), "NewImage": {"b": {"B": bytes([i % 256])}},
                          "ApproximateCreationDateTime": when}} for i in range(1050)]
    for i in range(0, 1050, 7):
        spill.extend("s1", recs[i:i + 7])
        assert len(spill.memory) < 100
    out = list(spill)
    spill.close()
    assert [r["dynamodb"]["SequenceNumber"] for _, r in out] == [str(i) for i in range(1050)]
    assert out[300][1]["dynamodb"]["NewImage"]["b"]["B"] == bytes([300 % 256])
    assert out[0][1]["dynamodb"]["ApproximateCreationDateTime"] == when.timestamp()


def test_without_capture_writes_arn_but_no_checkpoints(world, cache):
    """capture_stream=False (CLI, no daemon) swaps the scan in with the ARN and no checkpoints."""
    for i in range(30):
        put(world, i)
    cache.save_checkpoints([Checkpoint("businesses", "old-arn", "s0", None, "5")])
    result = sync(cache, world, capture_stream=False)
    assert result.rows == 30 and result.stream_records == 0
    assert cache.checkpoints("businesses") == []
    assert cache.table_state("businesses")["stream_arn"] == world.stream(TABLE).arn


def test_positions_come_from_valid_checkpoints_else_latest(world, cache):
    """A checkpoint on the current stream is resumed AFTER its sequence; shards without one start at LATEST."""
    put(world, 1)
    first = sync(cache, world)
    b = first.shards.readable()[0]
    put(world, 2)
    tailer = TableTailer(fake_source(world), BUSINESSES, first.shards, STREAM, 1, clock=time.monotonic)
    for bt in tailer.step(poll_all=True):
        apply_batch(cache, BUSINESSES, bt)
    seq = cache.checkpoints("businesses")[0].sequence_number
    assert seq is not None
    world.calls.clear()
    sync(cache, world)
    its = [c[1] for c in world.calls if c[0] == "get_shard_iterator"]
    assert its[0] == {"ShardId": b.shard_id, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seq}
    world.calls.clear()
    sync(cache, world, use_checkpoints=False)
    its = [c[1] for c in world.calls if c[0] == "get_shard_iterator"]
    assert its[0]["ShardIteratorType"] == "LATEST"


def test_aborted_full_sync_leaves_the_live_table_untouched(world, cache):
    """should_stop mid-scan raises FullSyncAborted, drops the shadow, and keeps the old table and checkpoints."""
    for i in range(100):
        put(world, i)
    sync(cache, world)
    before_cps = cache.checkpoints("businesses")
    for i in range(100, 200):
        put(world, i)
    with pytest.raises(FullSyncAborted):
        sync(cache, world, should_stop=lambda: cache.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name='_shadow_businesses'").fetchone()[0] > 0
            and Reader(cache.conn).conn.execute("SELECT count(*) FROM _shadow_businesses").fetchone()[0] >= 40)
    assert len(cache_items(cache)) == 100
    assert [c.sequence_number for c in cache.checkpoints("businesses")] == [c.sequence_number for c in before_cps]
    assert cache.conn.execute("SELECT count(*) FROM sqlite_master WHERE name='_shadow_businesses'").fetchone()[0] == 0


def test_resync_under_readers(world, cache, tmp_path):
    """A reader polling row counts during a full resync never sees fewer rows than N minus real deletes."""
    n = 400
    for i in range(n):
        put(world, i)
    sync(cache, world)
    deleted, pages = {"n": 0}, {"n": 0}

    def hook(table, _):
        pages["n"] += 1
        goal = len(seen) + 10  # the reader polls ten times during each Scan page, however busy the machine
        wait_for(lambda: len(seen) >= goal, 30, "ten reader polls")
        if deleted["n"] < 20:
            world.delete(TABLE, (f"b{deleted['n']:04d}",))
            deleted["n"] += 1

    world.scan_hook = hook
    reader = Reader.open(tmp_path / "cache.db")
    seen: list[int] = []
    done = threading.Event()

    def poll():
        while not done.is_set():
            seen.append(reader.count("businesses"))

    t = threading.Thread(target=poll)
    t.start()
    try:
        sync(cache, world, settings=FullSyncSettings(scan_segments=2, batch_size=10, spill_threshold=100))
    finally:
        done.set()
        t.join()
    assert pages["n"] >= 2 and len(seen) >= 10 * pages["n"]
    assert min(seen) >= n - deleted["n"]
    assert reader.count("businesses") == n - deleted["n"]
    reader.close()


def test_stream_disabled_or_wrong_view_type_is_a_clear_error(world, cache):
    """A table without a stream, or with a KEYS_ONLY stream, fails the full sync with a clear message."""
    world.stream(TABLE).enabled = False
    with pytest.raises(SeoSyncError, match="not enabled"):
        sync(cache, world)
    world.create_table(TABLE, ("business_id",), view_type="KEYS_ONLY")
    with pytest.raises(SeoSyncError, match="view type KEYS_ONLY"):
        sync(cache, world)


@pytest.mark.parametrize("host_clock_offset", [0.0, -60.0, 60.0], ids=["in-step", "host-behind", "host-ahead"])
def test_a_writer_that_never_pauses_cannot_keep_a_full_sync_catching_up(world, cache, host_clock_offset):
    """Every GetRecords brings a new write: the catch-up stops once a shard is past the Scan's end.

    What it read is applied in stream order and its checkpoint is the last record read, so the
    tailer goes on exactly after it; everything written up to the Scan's end is in the table.
    The Scan's end is taken on DynamoDB's clock: a host clock a minute off changes none of it.
    """
    for i in range(50):
        put(world, i)
    writes: list[tuple[int, float]] = []  # (item number, world time of the write)
    scan_pages: list[float] = []
    real_get_records = world.streams.get_records

    def busy_writer(**kwargs):
        world.advance(0.5)
        n = 1000 + len(writes)
        put(world, n)
        writes.append((n, world.now))
        return real_get_records(**kwargs)

    world.streams.get_records = busy_writer
    world.scan_hook = lambda table, page: scan_pages.append(world.now)
    stop = threading.Event()
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(
        sync(cache, world, wall=lambda: world.clock() + host_clock_offset, should_stop=stop.is_set)), daemon=True)
    runner.start()
    runner.join(timeout=60)
    stop.set()  # lets a catch-up that never ends fail the assertion below instead of hanging
    runner.join(timeout=30)
    assert outcome and not isinstance(outcome[0], BaseException), "the full sync never finished catching up"
    got = set(cache_items(cache))
    written = [f"b{n:04d}" for n, _ in writes]
    applied = [k for k in written if k in got]
    assert applied == written[:len(applied)]  # a prefix of the writes, none skipped
    assert {f"b{i:04d}" for i in range(50)} <= got
    scan_end = max(scan_pages)
    assert all(f"b{n:04d}" in got for n, t in writes if t <= scan_end + 1)
    last = max(n for n, _ in writes if f"b{n:04d}" in got)
    [cp] = cache.checkpoints("businesses")
    [shard] = world.stream(TABLE).shards  # one shard: the stream holds every write in order
    seq_of = {r["dynamodb"]["Keys"]["business_id"]["S"]: r["dynamodb"]["SequenceNumber"] for r in shard.records}
    assert cp.sequence_number == seq_of[f"b{last:04d}"]


@pytest.mark.parametrize("host_clock_offset", [0.0, -60.0, 60.0], ids=["in-step", "host-behind", "host-ahead"])
def test_the_catch_up_reads_to_the_scans_end_on_dynamodbs_clock(world, cache, host_clock_offset):
    """Updates made during the Scan to items it already read, which only the catch-up sees, are all in
    the table at the swap: the Scan's end is taken on DynamoDB's clock, not on this host's.

    The capture sees nothing here (as when it is throttled) and the catch-up reads one record a page,
    so a catch-up that stopped at a too-early bound would leave b0000 at an older version.
    """
    for i in range(50):
        put(world, i)
    runner_thread: list[threading.Thread] = []
    real_get_records = world.streams.get_records

    def only_the_catch_up_reads(**kwargs):
        if threading.current_thread() is not runner_thread[0]:  # the capture thread
            return {"Records": [], "NextShardIterator": kwargs["ShardIterator"]}
        return real_get_records(**kwargs)

    world.streams.get_records = only_the_catch_up_reads
    updates = {"n": 0}

    def hook(table, _):
        world.advance(10.0)  # the Scan takes DynamoDB-minutes, each page an update of an item read already
        updates["n"] += 1
        put(world, 0, version=1 + updates["n"], name="during the scan")

    world.scan_hook = hook
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(full_sync_table(
        cache, fake_source(world), BUSINESSES, FullSyncSettings(scan_segments=1, batch_size=10, spill_threshold=100),
        stream_settings=StreamSettings(idle_poll_interval=0.05, get_records_limit=1),
        wall=lambda: world.clock() + host_clock_offset)), daemon=True)
    runner_thread.append(runner)
    runner.start()
    runner.join(timeout=60)
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    assert updates["n"] >= 3
    assert cache_items(cache)["b0000"]["_version"] == {"N": str(1 + updates["n"])}
    assert cache_items(cache) == world_items(world)


def test_a_held_scan_calls_progress_every_tick_it_is_given(world, cache, monkeypatch):
    """While no Scan page comes, progress keeps being called, and the wait between calls is `tick_every`."""
    for i in range(5):
        put(world, i)
    entered, release = threading.Event(), threading.Event()
    real_scan = world.dynamodb.scan

    def held_scan(**kwargs):
        entered.set()
        release.wait(60)
        return real_scan(**kwargs)

    waits: list[float | None] = []
    real_pages = fullsync._Scan.pages

    def recorded_pages(self, tick):  # the wait a held Scan page gets between two calls of progress
        waits.append(self.tick_every)
        return real_pages(self, tick)

    monkeypatch.setattr(fullsync._Scan, "pages", recorded_pages)
    world.dynamodb.scan = held_scan
    ticks: list[float] = []
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(sync(
        cache, world, settings=FullSyncSettings(scan_segments=1), tick_every=0.01,
        progress=lambda _rows: ticks.append(time.monotonic()))), daemon=True)
    runner.start()
    try:
        assert entered.wait(20), "the full sync never reached its Scan"
        wait_for(lambda: len(ticks) >= 5, what="progress calls while the Scan is held")
    finally:
        release.set()
        runner.join(timeout=60)
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    assert cache_items(cache) == world_items(world)
    assert waits == [0.01]
