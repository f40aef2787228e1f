"""The full sync's Scan pipeline: pages converted on the reading threads, the ready ones inserted in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seo_sync import codec
from seo_sync.cache.scanned import scanned_page
from seo_sync.cache.writer import SHADOW_PREFIX, Cache
from seo_sync.schema import TABLES
from seo_sync.sync.fullsync import _Scan
from tests.support.items import biz

BUSINESSES = TABLES["businesses"]


class PagedSource:
    """Stands in for Source.scan: each segment yields its pages, then fails if told to."""

    def __init__(self, pages: dict[int, list[list[codec.Item]]], fail_segment: int | None = None) -> None:
        self.pages = pages
        self.fail_segment = fail_segment

    def scan(self, spec: Any, segment: int, total: int, **_: Any) -> Iterator[list[codec.Item]]:
        """The pages of one segment."""
        yield from self.pages.get(segment, [])
        if segment == self.fail_segment:
            raise RuntimeError("segment failed")


def test_scanned_page_skips_deleted_and_dead_letters_the_unstorable() -> None:
    """A page converts to rows of the storable items; a soft-deleted item is skipped, a keyless one is a dead letter."""
    page = scanned_page(BUSINESSES, [biz("a"), biz("b", deleted=True), {"name": {"S": "no key"}}])
    assert len(page.rows) == 1 and page.rows[0][BUSINESSES.column_names.index("business_id")] == "a"
    ((table, kind, _, reason, record, _, key),) = page.dead
    assert (table, kind) == ("businesses", "scan") and "no key" in record and reason and key is None


def test_insert_scanned_pages_writes_every_page_and_dead_letter(tmp_path: Path) -> None:
    """Several converted pages go into the shadow in one call: every row and every dead letter."""
    cache = Cache.open(tmp_path / "cache.db")
    try:
        cache.create_shadow(BUSINESSES)
        pages = [scanned_page(BUSINESSES, [biz("a"), biz("b")]), scanned_page(BUSINESSES, [{"name": {"S": "x"}}]),
                 scanned_page(BUSINESSES, [biz("c")])]
        assert cache.insert_scanned_pages(BUSINESSES, pages) == 3
        shadow = SHADOW_PREFIX + "businesses"
        assert cache.conn.execute(f'SELECT count(*) FROM "{shadow}"').fetchone()[0] == 3
        assert cache.dead_letter_count("businesses") == 1
    finally:
        cache.close()


def test_scan_hands_over_converted_pages_gathering_the_ready_ones() -> None:
    """Pages read by two segments arrive converted; pages already waiting come out together in one batch."""
    source = PagedSource({0: [[biz("a"), biz("b")]], 1: [[biz("c")]]})
    scan = _Scan(source, BUSINESSES, segments=2, page_limit=100, page_bytes=4096)
    scan.start()
    for t in scan.threads:  # the queue holds two pages a segment: both pages and both ends fit
        t.join(timeout=30)
    batches = list(scan.pages(lambda: None))
    scan.stop()
    assert len(batches) == 1
    keys = sorted(row[BUSINESSES.column_names.index("business_id")] for page in batches[0] for row in page.rows)
    assert keys == ["a", "b", "c"]


def test_scan_raises_a_segments_error() -> None:
    """A segment that fails ends the page stream with its error."""
    scan = _Scan(PagedSource({0: [[biz("a")]]}, fail_segment=1), BUSINESSES, segments=2, page_limit=100,
                 page_bytes=4096)
    scan.start()
    with pytest.raises(RuntimeError, match="segment failed"):
        for _ in scan.pages(lambda: None):
            pass
    scan.stop()
