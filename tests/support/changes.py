"""Changes for tests, made the way the daemon makes them: from a stream record, by `to_change`."""

from __future__ import annotations

from typing import Any

from seo_sync import codec
from seo_sync.changes import Change, to_change
from seo_sync.schema import TABLES


def upsert(table: str, item: codec.Item, seq: str, event: str = "MODIFY") -> Change:
    """An INSERT/MODIFY record of `item` on `table` with sequence number `seq`, as its Change."""
    spec = TABLES[table]
    record: dict[str, Any] = {"eventName": event, "dynamodb": {
        "Keys": {k: item[k] for k in spec.key_names}, "NewImage": item, "SequenceNumber": seq}}
    change = to_change(spec, record)
    assert change.kind == "upsert", change.reason
    return change
