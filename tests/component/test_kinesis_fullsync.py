"""A full sync whose change feed is Kinesis: records come late and out of order, so the capture
starts at a moment before the Scan (AT_TIMESTAMP) and reads on until records arrive after the
Scan's end plus the feed's lateness. The fake Kinesis delivers each record at a chosen moment."""

from __future__ import annotations

from typing import Any

from seo_sync import codec
from seo_sync.aws.kinesis import KinesisFeed
from seo_sync.aws.session import ErrorContext
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.config import FullSyncSettings, StreamSettings
from seo_sync.feed import TableInfo
from seo_sync.schema import BUSINESSES
from seo_sync.sync.engine import Engine
from seo_sync.sync.fullsync import full_sync_table
from seo_sync.sync.shards import ShardSet
from tests.support.fake_kinesis import FakeKinesis
from tests.support.fake_streams import FakeWorld, fake_source
from tests.support.settings import make_settings

TABLE = "seo_businesses"
FS = FullSyncSettings(scan_segments=1, batch_size=20, spill_threshold=100)
STREAM = StreamSettings(idle_poll_interval=0.05, max_polls_per_second=5.0)


def business(bid: str, name: str) -> dict[str, Any]:
    """An unversioned business item: only the order of its records says which is newer."""
    return codec.item_from_python({"business_id": bid, "name": name})


class KinesisWorld:
    """The fake DynamoDB tables and a fake Kinesis stream on one clock, and a source reading both."""

    def __init__(self, world: FakeWorld, lateness: float) -> None:
        self.world = world
        self.kin = FakeKinesis(clock=lambda: world.now)
        self.arn = self.kin.create_stream("seo-changes")
        self.source = fake_source(world)
        self.source.streams = KinesisFeed(self.kin, ErrorContext("http://kinesis.fake", "us-east-1"), "seo_",
                                          min_interval=0.0, clock=self.kin.clock, max_lateness=lateness)
        self.source.describe_table = lambda spec: TableInfo(TABLE, "ACTIVE", self.arn, True, "NEW_AND_OLD_IMAGES", 0)
        self.server_times: list[float] = []
        self.after_scan: list[Any] = []
        self.source.server_time = self._server_time
        self.ticking = False

    def _server_time(self, spec: object) -> float:
        """DynamoDB's clock; its second reading is the end of the Scan, where the scenario goes on."""
        if len(self.server_times) == 1:
            for step in self.after_scan:
                step()
            self.ticking = True
        self.server_times.append(self.world.now)
        return self.world.now

    def record(self, bid: str, name: str, created: float, delay: float | None = None) -> None:
        """DynamoDB writing one change of `bid` into the stream, arriving `delay` seconds from now."""
        self.kin.put_change(self.arn, TABLE, "MODIFY", {"business_id": {"S": bid}}, business(bid, name), None,
                            created, delay=delay)

    def progress(self, _rows: int) -> None:
        """After the Scan, each call of the full sync's progress is one second on the shared clock."""
        if self.ticking:
            self.world.now += 1.0
            self.kin.deliver()

    def sync(self, cache: Any) -> None:
        full_sync_table(cache, self.source, BUSINESSES, FS, stream_settings=STREAM, wall=lambda: self.world.now,
                        progress=self.progress, tick_every=0.02)


def names(cache: Any) -> dict[str, str]:
    return {it["business_id"]["S"]: it["name"]["S"] for it in Reader(cache.conn).items(BUSINESSES)}


def test_a_record_that_arrives_late_cannot_regress_what_the_scan_read(world: FakeWorld, cache: Any) -> None:
    """Two changes of one item just before the Scan; the newer arrives first, the older after the
    capture began. Positioned at LATEST, the capture held only the older one and put it over the
    Scan's newer row. Positioned before the Scan, it holds both and keeps the newer, with no need
    to ask DynamoDB again."""
    kw = KinesisWorld(world, lateness=1.0)
    t = world.now
    world.put(TABLE, business("b1", "new"))
    kw.record("b1", "new", created=t - 0.5)  # arrives now, before the capture's positions
    kw.record("b1", "old", created=t - 0.6, delay=3.0)  # arrives at t + 3, during the Scan
    world.now = t + 0.5
    delivered = []

    def hook(_table: str, _page: int) -> None:
        if not delivered:
            world.now = t + 4.0
            kw.kin.deliver()
            delivered.append(True)

    world.scan_hook = hook
    kw.after_scan.append(lambda: kw.record("b9", "end", created=t + 4.0, delay=4.0))  # arrives past the end
    kw.sync(cache)
    assert names(cache)["b1"] == "new"
    assert not [r for r in cache.pending_repairs() if r[1] == ("b1",)]


def test_the_capture_waits_for_changes_the_scan_missed_that_arrive_late(world: FakeWorld, cache: Any) -> None:
    """A change made before the Scan ended arrives after a newer change of another item. Reading
    until a record made after the Scan's end missed it; reading until the arrival time passes the
    Scan's end plus the lateness holds it at the swap."""
    kw = KinesisWorld(world, lateness=5.0)
    t = world.now
    world.put(TABLE, business("b1", "v1"))
    world.put(TABLE, business("b2", "x0"))
    world.now = t + 0.5

    def scan_ended() -> None:
        world.now = t + 4.0
        world.put(TABLE, business("b1", "v2"))
        kw.record("b1", "v2", created=t + 3.0, delay=4.0)  # made during the Scan, arrives at t + 8
        world.put(TABLE, business("b2", "x1"))
        kw.record("b2", "x1", created=t + 6.5, delay=2.5)  # made after it, arrives first, at t + 6.5
        world.put(TABLE, business("b9", "end"))
        kw.record("b9", "end", created=t + 12.0, delay=8.0)  # arrives past the Scan's end plus the lateness

    kw.after_scan.append(scan_ended)
    kw.sync(cache)
    assert kw.server_times[1] == t + 4.0
    assert names(cache)["b1"] == "v2"
    assert names(cache) == {"b1": "v2", "b2": "x1", "b9": "end"}


def test_a_position_in_time_survives_its_iterator_expiring(world: FakeWorld) -> None:
    """An AT_TIMESTAMP position that has not delivered a record yet is taken again when its iterator
    expires (a time stays a valid position), where a LATEST one would be lost."""
    kw = KinesisWorld(world, lateness=1.0)
    t = world.now
    kw.record("b1", "before", created=t - 10)
    world.now = t + 1
    ss = ShardSet(kw.source.streams, "businesses", kw.arn, STREAM, clock=kw.kin.clock, wall=kw.kin.clock)
    ss.take_positions([], at_time=t + 0.5)
    world.now += 600  # past Kinesis's five minutes
    kw.record("b1", "after", created=world.now)
    (cursor,) = ss.cursors.values()
    assert ss.poll(cursor) is None  # expired: taken again at the same time
    page = ss.poll(cursor)
    assert page is not None and [r["dynamodb"]["NewImage"]["name"]["S"] for r in page.records] == ["after"]


def test_a_first_boots_doubt_is_read_again_once_the_cache_is_published(world: FakeWorld, tmp_path) -> None:
    """A first boot on Kinesis: b1 changes just after the Scan read it, inside the clock bound of the
    Scan, so its captured record is a doubt. Once the cache is published its repair read is sent and
    the writer applies the answer within its next turns, and the row holds DynamoDB's state."""
    kw = KinesisWorld(world, lateness=1.0)
    t = world.now
    world.put(TABLE, business("b1", "scanned"))
    world.put(TABLE, business("b2", "x"))
    world.now = t + 0.5

    def scan_ended() -> None:
        world.put(TABLE, business("b1", "changed"))  # after the Scan read b1, within the clock bound
        kw.record("b1", "changed", created=t + 0.6, delay=0.0)
        world.now = t + 4.0
        world.put(TABLE, business("b9", "end"))
        kw.record("b9", "end", created=t + 12.0, delay=8.0)  # arrives past the Scan's end plus the lateness

    kw.after_scan.append(scan_ended)
    cache = Cache.open(tmp_path / "cache.db")
    cache.clock = kw.kin.clock
    engine = Engine(make_settings(tmp_path), kw.source, cache, clock=world.clock, tables=["businesses"])
    writer = engine.writer
    turns_after_boot: list[float] = []

    def mark() -> None:  # the writer's progress beat: a tenth of a second on the shared clock
        if kw.ticking:
            world.now += 0.1
            kw.kin.deliver()

    def count_turn() -> None:  # the writer's last step of a turn: stop three turns after the boot synced
        if engine.boot_synced.is_set():
            turns_after_boot.append(world.now)
            engine.repair_reader.read(ready=writer.repairable)  # the repair thread's turn, in step
            if len(turns_after_boot) >= 3:
                engine.stop_event.set()

    writer._mark = mark  # type: ignore[method-assign]
    writer._update_counts = count_turn  # type: ignore[method-assign]
    try:
        writer.loop()
        assert engine.tables["businesses"].started and len(turns_after_boot) == 3
        assert names(cache)["b1"] == "changed"
        assert engine.repairs.status()["done"] >= 1 and not cache.pending_repairs()
    finally:
        cache.close()
