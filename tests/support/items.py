"""The businesses table's items as the cache and as a fake world hold them, by business id: the two
sides most component tests compare."""

from __future__ import annotations

from typing import Any

from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES
from tests.support.fake_streams import FakeWorld

BUSINESSES_TABLE = "seo_businesses"  # the table's name in the fake world (default prefix)


def cache_items(cache: Cache) -> dict[str, Any]:
    """The cached businesses, by business id, as DynamoDB items."""
    return {it["business_id"]["S"]: it for it in Reader(cache.conn).items(BUSINESSES)}


def world_items(world: FakeWorld) -> dict[str, Any]:
    """The fake world's businesses, by business id."""
    return {k[0]: v for k, v in world.tables[BUSINESSES_TABLE].items.items()}
