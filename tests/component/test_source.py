"""source.py against moto's HTTP server: tables, scans, conditional writes, streams, errors."""

from __future__ import annotations

import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.errors import BadInput, SourceUnavailable, TableMissing, VersionMismatch
from seo_sync.schema import TABLES
from tests.support.settings import make_settings


@pytest.fixture
def source(settings):
    return Source(settings.aws, settings.table_prefix)


def test_create_tables_makes_five_tables_with_streams_and_is_idempotent(source):
    """create_table creates each table with a NEW_AND_OLD_IMAGES stream once; the second call reports it existed."""
    assert all(source.create_table(spec) for spec in TABLES.values())
    assert not any(source.create_table(spec) for spec in TABLES.values())
    for spec in TABLES.values():
        info = source.describe_table(spec)
        assert info.name == "seo_" + spec.name
        assert info.stream_enabled and info.view_type == "NEW_AND_OLD_IMAGES" and info.stream_arn


def test_parallel_scan_segments_partition_the_table(source):
    """Every item appears in exactly one Scan segment."""
    spec = TABLES["keywords"]
    source.create_table(spec)
    items = [codec.item_from_python({"business_id": f"b{i % 7}", "keyword_id": f"k{i}#en", "keyword": "x"})
             for i in range(120)]
    assert source.batch_write(spec, items) == 120
    seen = [it["keyword_id"]["S"] for seg in range(4) for page in source.scan(spec, seg, 4, page_limit=25)
            for it in page]
    assert sorted(seen) == sorted(f"k{i}#en" for i in range(120))


def test_byte_sized_scan_pages_follow_the_item_size(source):
    """With page_bytes, pages after the first hold about that many bytes, big items or small, and every
    item still comes exactly once."""
    spec = TABLES["keywords"]
    source.create_table(spec)
    small = [codec.item_from_python({"business_id": "small", "keyword_id": f"s{i:03d}", "keyword": "x"})
             for i in range(300)]
    big = [codec.item_from_python({"business_id": "big", "keyword_id": f"g{i:03d}", "keyword": "y" * 2000})
           for i in range(300)]
    source.batch_write(spec, small + big)
    pages = list(source.scan(spec, page_limit=1000, page_bytes=20_000))
    ids = [it["keyword_id"]["S"] for page in pages for it in page]
    assert sorted(ids) == sorted(it["keyword_id"]["S"] for it in small + big)
    assert len(pages[0]) == 100  # the first page, before the item size is known
    big_pages = [len(p) for p in pages[1:-1] if all(it["business_id"]["S"] == "big" for it in p)]
    small_pages = [len(p) for p in pages[1:-1] if all(it["business_id"]["S"] == "small" for it in p)]
    assert big_pages and max(big_pages) <= 12  # ~2 KB items: about 10 to a 20 KB page
    assert small_pages and max(small_pages) >= 100  # ~100-byte items: many more to a page
    assert all(len(p) <= 1000 for p in pages)


def test_conditional_put_reports_the_current_item_on_conflict(source):
    """A put expecting the wrong _version raises VersionMismatch carrying the item in DynamoDB."""
    spec = TABLES["businesses"]
    source.create_table(spec)
    item = codec.item_from_python({"business_id": "acme", "name": "Acme", "_version": 1})
    source.put_item(spec, item, expected_version=None)
    with pytest.raises(VersionMismatch) as exc:
        source.put_item(spec, {**item, "_version": {"N": "2"}}, expected_version=7)
    assert exc.value.current is not None and exc.value.current["_version"] == {"N": "1"}


def test_missing_table_is_a_clear_error(source):
    """DescribeTable on a table that does not exist names it and suggests create-tables."""
    with pytest.raises(TableMissing) as exc:
        source.describe_table(TABLES["businesses"])
    assert "seo_businesses" in str(exc.value) and "create-tables" in str(exc.value)


def test_unreachable_endpoint_is_a_clear_error(tmp_path):
    """A refused connection becomes SourceUnavailable naming the endpoint, quickly."""
    s = make_settings(tmp_path, "http://127.0.0.1:9", aws={"endpoint_url": "http://127.0.0.1:9",
                                                           "region": "us-east-1", "max_attempts": 1,
                                                           "connect_timeout": 1})
    with pytest.raises(SourceUnavailable) as exc:
        Source(s.aws, s.table_prefix).describe_table(TABLES["businesses"])
    assert "127.0.0.1:9" in str(exc.value)


def test_stream_reader_sees_inserts_in_order(source):
    """A put appears as an INSERT record on the table's stream via TRIM_HORIZON."""
    spec = TABLES["businesses"]
    source.create_table(spec)
    arn = source.describe_table(spec).stream_arn
    source.put_item(spec, codec.item_from_python({"business_id": "b1", "name": "One"}))
    info = source.streams.describe_stream(arn)
    assert len(info.shards) >= 1
    it = source.streams.shard_iterator(arn, info.shards[0].shard_id, "TRIM_HORIZON")
    page = source.streams.get_records(it)
    assert [r["eventName"] for r in page.records] == ["INSERT"]


def test_stream_reader_refuses_a_position_in_time(source):
    """DynamoDB Streams has no AT_TIMESTAMP: asking for one is refused as bad input naming the kind."""
    spec = TABLES["businesses"]
    source.create_table(spec)
    arn = source.describe_table(spec).stream_arn
    shard = source.streams.describe_stream(arn).shards[0].shard_id
    with pytest.raises(BadInput, match="AT_TIMESTAMP"):
        source.streams.shard_iterator(arn, shard, "AT_TIMESTAMP", None, "businesses", at=1.0)
