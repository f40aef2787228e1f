"""A Scan page as the rows of a shadow table and the dead letters of its unstorable items.

Pure (no SQLite), so a full sync converts each page on the thread that read it while the writer
thread is inside SQLite, which runs without the GIL; the writer then only executes the inserts
(`Cache.insert_scanned_pages`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from seo_sync import codec
from seo_sync.cache.sql import item_text
from seo_sync.schema import TableSpec


@dataclass
class ScannedPage:
    """One page's rows (values in spec.column_names order) and dead letters, ready to insert."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    dead: list[tuple[Any, ...]] = field(default_factory=list)


def scanned_page(spec: TableSpec, items: list[codec.Item]) -> ScannedPage:
    """Convert one Scan page: deleted items are skipped, items that cannot be stored become dead letters."""
    page = ScannedPage()
    now = time.time()
    for it in items:
        if codec.is_deleted(it):
            continue
        try:
            page.rows.append(codec.row_values(spec, it))
        except codec.CodecError as e:
            page.dead.append((spec.name, "scan", "", str(e.message), item_text(it), now, None))
    return page
