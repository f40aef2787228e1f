"""An anti-entropy suspect that a record in flight explains is counted "in flight", never warned about."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from seo_sync import codec
from seo_sync.aws.tables import ItemRead
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES
from seo_sync.sync.repair import SUSPECT, RepairQueue, run_repairs


class OneItemSource:
    """A source whose consistent reads answer from a dict (only what run_repairs calls)."""

    def __init__(self, items: dict[tuple[str, ...], codec.Item]) -> None:
        self.items = items

    def read_item(self, spec: Any, key: tuple[str, ...], *, live: bool) -> ItemRead:
        return ItemRead(self.items.get(key), time.time())


def test_a_suspect_the_feed_already_put_right_is_in_flight(tmp_path: Path) -> None:
    """Suspect b1 equals DynamoDB by its read (in flight, info only); suspect b2 differs (repaired, one warning)."""
    cache = Cache.open(tmp_path / "cache.db")
    try:
        b1 = codec.item_from_python({"business_id": "b1", "name": "same", "_version": 2})
        cache.apply_item(BUSINESSES, ("b1",), b1)
        cache.apply_item(BUSINESSES, ("b2",), codec.item_from_python({"business_id": "b2", "name": "old"}))
        source = OneItemSource({("b1",): b1, ("b2",): codec.item_from_python({"business_id": "b2", "name": "new"})})
        repairs = RepairQueue(rate=100, burst=100)
        repairs.add("businesses", ("b1",), SUSPECT)
        repairs.add("businesses", ("b2",), SUSPECT)
        with capture_logs() as logs:
            assert run_repairs(cache, source, {"businesses": BUSINESSES}, repairs) == 2  # type: ignore[arg-type]
        status = repairs.status()
        assert status["in_flight"] == 1 and status["changed"] == 1
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [(e["event"], e["key"]) for e in warnings] == [("anti_entropy_difference_repaired", ["b2"])]
    finally:
        cache.close()
