"""Businesses items as the tests write them, and the tables' items as the cache, the engine and a fake
world hold them: the sides most component tests build and compare."""

from __future__ import annotations

from typing import Any

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES, TableSpec
from seo_sync.sync.engine import Engine
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


def numbered_id(i: int) -> str:
    """The business id of business number `i`: b0001 for 1."""
    return f"b{i:04d}"


def numbered_biz(i: int, version: int = 1, name: str | None = None, **attrs: Any) -> codec.Item:
    """Business number `i` at `version`, named n{version} unless `name` is given; `attrs` are plain
    Python values."""
    return codec.item_from_python({"business_id": numbered_id(i), "name": name or f"n{version}",
                                   "_version": version, **attrs})


def cache_items(cache: Cache) -> dict[str, Any]:
    """The cached businesses, by business id, as DynamoDB items."""
    return {it["business_id"]["S"]: it for it in Reader(cache.conn).items(BUSINESSES)}


def world_items(world: FakeWorld) -> dict[str, Any]:
    """The fake world's businesses, by business id."""
    return {k[0]: v for k, v in world.tables[BUSINESSES_TABLE].items.items()}


def engine_items(engine: Engine, spec: TableSpec) -> dict[tuple[str, ...], codec.Item]:
    """One table's items as the running engine's cache holds them, by key, read on the writer thread."""
    items = engine.submit(lambda c: list(Reader(c.conn).items(spec)))
    return {tuple(it[k]["S"] for k in spec.key_names): it for it in items}


def in_step(engine: Engine, world: FakeWorld, spec: TableSpec = BUSINESSES) -> bool:
    """True when the engine's cache holds exactly the fake world's items of one table that are not
    soft-deleted."""
    want = {k: v for k, v in world.tables[spec.dynamo_name()].items.items() if not codec.is_deleted(v)}
    return engine_items(engine, spec) == want
