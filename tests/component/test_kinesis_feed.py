"""aws/kinesis.py's KinesisFeed over the AWS-faithful fake Kinesis, read by the shared shard cursors and tailer."""

from __future__ import annotations

from seo_sync import codec
from seo_sync.aws.kinesis import KinesisFeed
from seo_sync.aws.kinesis_source import KinesisSource
from seo_sync.aws.session import ErrorContext
from seo_sync.cache.reader import Reader
from seo_sync.changes import to_change
from seo_sync.config import Settings, StreamSettings
from seo_sync.schema import BUSINESSES, KEYWORDS, TABLES
from seo_sync.sync.shards import ShardSet
from seo_sync.sync.tailer import TableTailer
from seo_sync.sync.writer import apply_batch
from tests.support.fake_kinesis import FakeKinesis
from tests.support.fake_streams import FakeWorld, create_tables
from tests.support.items import numbered_biz

STREAM = StreamSettings(idle_poll_interval=1.0, max_polls_per_second=4.0, get_records_limit=50, max_backoff=30.0)
CTX = ErrorContext("http://kinesis.fake", "us-east-1")


def put(kin: FakeKinesis, arn: str, i: int, version: int = 1, table: str = "seo_businesses") -> None:
    """DynamoDB writing business b{i:04d} at `version` into the stream."""
    item = numbered_biz(i, version)
    kin.put_change(arn, table, "MODIFY" if version > 1 else "INSERT", {"business_id": item["business_id"]},
                   item, None, kin.clock())


def feed_over(kin: FakeKinesis, min_interval: float = 1.0) -> KinesisFeed:
    """A feed paced on the fake's clock."""
    return KinesisFeed(kin, CTX, "seo_", min_interval=min_interval, clock=kin.clock)


def shard_set(feed: KinesisFeed, kin: FakeKinesis, arn: str, table: str = "businesses") -> ShardSet:
    """A ShardSet reading `arn` from TRIM_HORIZON, on the fake's clock."""
    ss = ShardSet(feed, table, arn, STREAM, clock=kin.clock, wall=kin.clock, rng=lambda: 0.5)
    ss.refresh()
    return ss


def drain(kin: FakeKinesis, ss: ShardSet, rounds: int = 300) -> list[tuple[str, str]]:
    """Poll every readable shard until nothing is left; (shard, business id) in the order read."""
    got: list[tuple[str, str]] = []
    quiet = 0
    for _ in range(rounds):
        pages = []
        if ss.describe_due(kin.clock()) or ss.waiting_for_children(window=5.0):
            ss.refresh()
        for c in ss.readable():
            page = ss.poll(c, kin.clock())
            if page is not None:
                pages.append(page)
                got += [(page.shard_id, r["dynamodb"]["Keys"]["business_id"]["S"]) for r in page.records]
        kin.advance(1.0)
        quiet = 0 if any(p.records for p in pages) or ss.waiting_for_children(window=5.0) else quiet + 1
        if (quiet >= 3 and not ss.readable()) or quiet >= 10:
            return got
    raise AssertionError("the stream did not drain")


def test_records_arrive_in_the_dynamodb_streams_shape():
    """A KDS record reads as a DynamoDB Streams record: Kinesis sequence number, µs creation time, AttributeValues."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    put(kin, arn, 1, version=3)
    feed = feed_over(kin)
    it = feed.shard_iterator(arn, "shardId-000000000000", "TRIM_HORIZON", None, "businesses")
    page = feed.get_records(it, 100, "businesses")
    (rec,) = page.records
    assert len(rec["dynamodb"]["SequenceNumber"]) == 56
    assert abs(rec["dynamodb"]["ApproximateCreationDateTime"] - kin.clock()) < 1e-5
    change = to_change(BUSINESSES, rec)
    assert (change.kind, change.key, change.version) == ("upsert", ("b0001",), 3)
    assert page.next_iterator is not None


def test_shard_list_is_paged():
    """ListShards is paged with the NextToken alone, and every shard of a large stream is listed."""
    kin = FakeKinesis(page_limit=100)
    arn = kin.create_stream("seo-changes", shards=250)
    feed = feed_over(kin)
    info = feed.describe_stream(arn)
    assert len(info.shards) == 250
    assert feed.describe_stream_calls == 3


def test_parent_is_read_before_its_children_after_a_split():
    """A split shard is read to its end (null NextShardIterator) before either child."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    for i in range(20):
        put(kin, arn, i)
    kids = kin.split(arn, "shardId-000000000000")
    for i in range(20, 40):
        put(kin, arn, i)
    ss = shard_set(feed_over(kin), kin, arn)
    got = drain(kin, ss)
    assert sorted(b for _, b in got) == [f"b{i:04d}" for i in range(40)]
    shards_in_order = [s for s, _ in got]
    last_parent = max(i for i, s in enumerate(shards_in_order) if s == "shardId-000000000000")
    assert last_parent < min(i for i, s in enumerate(shards_in_order) if s in kids)


def test_merged_shard_waits_for_both_parents():
    """A merged shard is not read until both its parent and its adjacent parent are read to their ends."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes", shards=2)
    for i in range(30):
        put(kin, arn, i)
    child = kin.merge(arn, "shardId-000000000000", "shardId-000000000001")
    for i in range(30, 40):
        put(kin, arn, i)
    ss = shard_set(feed_over(kin), kin, arn)
    assert ss.cursors[child].adjacent_parent_id == "shardId-000000000001"
    parent = ss.cursors["shardId-000000000000"]
    got: list[tuple[str, str]] = []
    while not parent.finished:  # one parent done, the other still unread: the child waits
        page = ss.poll(parent, kin.clock())
        got += [(parent.shard_id, r["dynamodb"]["Keys"]["business_id"]["S"]) for r in page.records] if page else []
        kin.advance(1.0)
    assert ss.blocked(ss.cursors[child])
    got += drain(kin, ss)
    assert len({b for _, b in got}) == 40
    first_child = min(i for i, (s, _) in enumerate(got) if s == child)
    assert all(s != "shardId-000000000001" for s, _ in got[first_child:])


def test_expired_iterator_resumes_after_the_last_record():
    """An iterator idle past 5 minutes expires; the cursor resumes after its last record and loses nothing."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    for i in range(10):
        put(kin, arn, i)
    ss = shard_set(feed_over(kin), kin, arn)
    c = ss.cursors["shardId-000000000000"]
    page = ss.poll(c, kin.clock())
    assert page is not None and len(page.records) == 10
    for i in range(10, 15):
        put(kin, arn, i)
    kin.advance(400.0)
    assert ss.poll(c, kin.clock()) is None  # expired: a new iterator after the last record is taken
    got = drain(kin, ss)
    assert [b for _, b in got] == [f"b{i:04d}" for i in range(10, 15)]


def test_throttling_backs_off_and_recovers():
    """ProvisionedThroughputExceeded backs the shard off; once it passes, every record arrives."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    for i in range(5):
        put(kin, arn, i)
    kin.throttle_next = 3
    ss = shard_set(feed_over(kin), kin, arn)
    got = drain(kin, ss)
    assert kin.throttled == 3
    assert sorted(b for _, b in got) == [f"b{i:04d}" for i in range(5)]


def test_shared_stream_routes_records_by_table_and_reads_each_shard_once():
    """Five tables on one stream each get only their records, and a page is fetched once for all of them."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes", shards=2)
    feed = feed_over(kin)
    sets = {name: shard_set(feed, kin, arn, name) for name in TABLES}
    for i in range(40):
        put(kin, arn, i)
        kw = codec.item_from_python({"business_id": "b0001", "keyword_id": f"k{i}", "keyword": "x"})
        kin.put_change(arn, "seo_keywords", "INSERT", {k: kw[k] for k in KEYWORDS.key_names}, kw, None, kin.clock())
    seen: dict[str, list[str]] = {name: [] for name in TABLES}
    for _ in range(6):
        for name, ss in sets.items():
            for c in ss.readable():
                page = ss.poll(c, kin.clock())
                seen[name] += [to_change(TABLES[name], r).kind for r in page.records] if page else []
        kin.advance(1.0)
    assert seen["businesses"] == ["upsert"] * 40 and seen["keywords"] == ["upsert"] * 40
    assert seen["questionnaires"] == [] and seen["service_areas"] == []
    assert kin.throttled == 0
    assert feed.pages_shared >= 4 * feed.get_records_calls // 2


def test_tables_polling_in_step_stay_far_below_the_shared_read_limit():
    """However often five pollers ask, one host makes at most one GetRecords call a shard a second."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    feed = feed_over(kin)
    sets = [shard_set(feed, kin, arn, name) for name in TABLES]
    start = kin.clock()
    for round_ in range(50):
        put(kin, arn, round_)
        for ss in sets:
            for c in ss.readable():
                ss.poll(c, c.next_due)  # as soon as each cursor allows
        kin.advance(0.1)
    seconds = kin.clock() - start
    assert kin.throttled == 0
    assert kin.calls["shardId-000000000000"] <= seconds + 1


def test_tailer_batches_say_they_have_no_per_item_order(cache):
    """Batches from the Kinesis feed are marked for the order-independent apply and reach the cache."""
    world = FakeWorld()
    create_tables(world, ["businesses"])
    kin = FakeKinesis(clock=world.clock)
    arn = kin.create_stream("seo-changes")
    settings = Settings.model_validate({"source": {"kind": "kinesis"},
                                        "kinesis": {"stream_arn": arn, "check_destination": False}})
    source = KinesisSource(settings, dynamodb_client=world.dynamodb, streams_client=world.streams,
                           kinesis_client=kin)
    assert source.describe_table(BUSINESSES).stream_arn == arn
    feed = source.streams
    assert isinstance(feed, KinesisFeed)
    feed.clock = world.clock
    ss = ShardSet(feed, "businesses", arn, STREAM, clock=world.clock, wall=world.clock)
    tailer = TableTailer(source, BUSINESSES, ss, STREAM, generation=1, clock=world.clock)
    for i in range(5):
        world.put("seo_businesses", numbered_biz(i))
    kin.forward_world(world, {"seo_businesses": arn})
    batches = []
    for _ in range(4):
        batches += tailer.step(poll_all=True)
        world.advance(1.0)
    with_records = [b for b in batches if b.records]
    assert with_records and all(b.ordered is False for b in with_records)
    cache.clock = world.clock  # the fake world's records are years old on the host's clock
    for b in batches:
        apply_batch(cache, BUSINESSES, b)
    assert len(list(Reader(cache.conn).items(BUSINESSES))) == 5


def test_a_latest_position_starts_after_the_tip_just_read_and_is_shared():
    """LATEST, when the shard's tip was read a moment ago, is "after the tip": no record is skipped,
    and a second table's first page comes from memory."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    for i in range(3):
        put(kin, arn, i)
    feed = feed_over(kin)
    first = feed.get_records(feed.shard_iterator(arn, "shardId-000000000000", "TRIM_HORIZON"), 100, "businesses")
    assert len(first.records) == 3
    kin.advance(1.0)
    put(kin, arn, 3)  # arrives after the tip was read and before LATEST is asked for
    a = feed.shard_iterator(arn, "shardId-000000000000", "LATEST", None, "businesses")
    b = feed.shard_iterator(arn, "shardId-000000000000", "LATEST", None, "keywords")
    page_a = feed.get_records(a, 100, "businesses")
    page_b = feed.get_records(b, 100, "keywords")
    assert [r["dynamodb"]["Keys"]["business_id"]["S"] for r in page_a.records] == ["b0003"]
    assert page_b.records == [] and feed.get_records_calls == 2 and feed.pages_shared == 1


def test_no_table_of_a_shared_stream_starves_under_steady_writes():
    """A table whose position no other table's page covers still gets the shard's next call: under steady
    writes every table's records arrive within a few seconds."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    feed = feed_over(kin)
    eager = [shard_set(feed, kin, arn, name) for name in ("questionnaires", "keywords", "service_areas")]
    late = ShardSet(feed, "businesses", arn, STREAM, clock=kin.clock, wall=kin.clock, rng=lambda: 0.5)
    late.take_positions([])  # LATEST, with no tip read yet: a position no other page covers
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    for tick in range(100):
        if tick % 2 == 0:
            put(kin, arn, tick)
            written[f"b{tick:04d}"] = kin.clock()
            kw = codec.item_from_python({"business_id": "b1", "keyword_id": f"k{tick}", "keyword": "x"})
            kin.put_change(arn, "seo_keywords", "INSERT", {k: kw[k] for k in KEYWORDS.key_names}, kw, None,
                           kin.clock())
        for ss in [*eager, late]:
            for c in ss.due(kin.clock()):
                page = ss.poll(c, kin.clock())
                if page is not None and ss is late:
                    for r in page.records:
                        seen.setdefault(r["dynamodb"]["Keys"]["business_id"]["S"], kin.clock())
        kin.advance(0.1)
    lags = [seen[b] - t for b, t in written.items() if b in seen]
    assert len(lags) >= len(written) - 5 and max(lags) <= 4.0
    assert kin.throttled == 0


def test_a_table_at_the_tip_gets_its_turn_while_other_tables_wait_at_positions_in_time():
    """A quiet stream, four tables at positions in time that no page of another table can serve (a full
    sync's capture), each asking once a second, and one table at the tip asking four times a second:
    the shard's one call a second goes to each position in turn, so the table at the tip learns it is
    at the tip within a few seconds instead of waiting behind the others for as long as they ask."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    shard = "shardId-000000000000"
    for i in range(3):
        put(kin, arn, i)
    feed = feed_over(kin)
    first = feed.get_records(feed.shard_iterator(arn, shard, "TRIM_HORIZON", None, "businesses"), 100, "businesses")
    at_tip = first.next_iterator
    assert at_tip is not None and len(first.records) == 3
    kin.advance(1.0)
    others = {name: feed.shard_iterator(arn, shard, "AT_TIMESTAMP", None, name, at=kin.clock())
              for name in ("questionnaires", "keywords", "service_areas", "prompt_templates")}
    answered = None
    for tick in range(80):  # 20 s in quarters
        if tick % 4 == 0:
            for name, position in others.items():
                others[name] = feed.get_records(position, 100, name).next_iterator or position
        page = feed.get_records(at_tip, 100, "businesses")
        at_tip = page.next_iterator or at_tip
        if page.behind_ms == 0:
            answered = tick * 0.25
            break
        kin.advance(0.25)
    assert answered is not None and answered <= 6.0, f"the table at the tip got no answer in {tick * 0.25} s"
    assert kin.throttled == 0


def test_a_quiet_table_of_a_shared_stream_gets_a_position_it_can_resume_from(cache):
    """A table with no records of its own moves with the stream: its cursor takes the sequence number
    the other tables' records were read to, and the tailer commits that first position at once, so
    a restart resumes there instead of fully syncing a table that never had a record."""
    kin = FakeKinesis()
    arn = kin.create_stream("seo-changes")
    feed = feed_over(kin, min_interval=0.0)
    quiet = ShardSet(feed, "questionnaires", arn, STREAM, clock=kin.clock, wall=kin.clock, rng=lambda: 0.5)
    quiet.take_positions([], at_time=kin.clock() - 1)
    for i in range(3):
        put(kin, arn, i)
    tailer = TableTailer(KinesisSource.__new__(KinesisSource), TABLES["questionnaires"], quiet, STREAM, 1,
                         clock=kin.clock)
    quiet.last_describe = kin.clock()  # the listing is fresh: step polls without describing the table
    for c in quiet.cursors.values():
        c.last_handed = kin.clock()  # handed on just now: no idle touch is due
    batches = tailer.step(poll_all=True)
    (cursor,) = quiet.cursors.values()
    assert cursor.seq == kin.streams[arn].shards[0].records[-1]["SequenceNumber"]
    assert [b.records for b in batches] == [[]]
    assert batches[0].checkpoint.sequence_number == cursor.seq
    assert tailer.step(poll_all=True) == []  # later empty pages commit nothing more
