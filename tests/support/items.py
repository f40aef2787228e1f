"""Businesses items as the tests write them, and the businesses as the cache and a fake world hold them:
the sides most component tests build and compare."""

from __future__ import annotations

from typing import Any

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES
from tests.support.fake_streams import FakeWorld

BUSINESSES_TABLE = "seo_businesses"  # the table's name in the fake world (default prefix)


def biz(bid: str, version: int | None = None, name: str = "n", deleted: bool = False,
        **attrs: codec.AttributeValue) -> codec.Item:
    """A businesses item keyed `bid`: its `name`, a `_version` only when one is given, `_deleted` when
    `deleted`, and `attrs` as the AttributeValues they are."""
    item: codec.Item = {"business_id": {"S": bid}, "name": {"S": name}, **attrs}
    if version is not None:
        item["_version"] = {"N": str(version)}
    if deleted:
        item["_deleted"] = {"BOOL": True}
    return item


def cache_items(cache: Cache) -> dict[str, Any]:
    """The cached businesses, by business id, as DynamoDB items."""
    return {it["business_id"]["S"]: it for it in Reader(cache.conn).items(BUSINESSES)}


def world_items(world: FakeWorld) -> dict[str, Any]:
    """The fake world's businesses, by business id."""
    return {k[0]: v for k, v in world.tables[BUSINESSES_TABLE].items.items()}
