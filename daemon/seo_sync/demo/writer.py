"""The demo's simulated platform writer: versioned edits, new keywords and soft deletes, straight to DynamoDB."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.errors import VersionMismatch
from seo_sync.schema import TABLES


@dataclass
class WriterStats:
    """What the simulated writer did."""

    edits: int = 0
    new_keywords: int = 0
    soft_deletes: int = 0
    conflicts: int = 0
    log: list[str] = field(default_factory=list)


class SimulatedWriter:
    """Plays the platform: versioned edits, new keywords, soft deletes, straight to DynamoDB."""

    def __init__(self, source: Source, seed: int = 7) -> None:
        self.source = source
        self.rng = random.Random(seed)
        self.stats = WriterStats()
        self._counter = 0

    def step(self) -> None:
        """One write, chosen at random."""
        self._counter += 1
        action = self.rng.choice(("edit", "edit", "keyword", "keyword", "soft_delete"))
        try:
            getattr(self, f"_{action}")()
        except VersionMismatch:
            self.stats.conflicts += 1

    def _pick(self, table: str) -> codec.Item | None:
        items = [it for page in self.source.scan(TABLES[table], page_limit=200) for it in page
                 if not codec.is_deleted(it)]
        return self.rng.choice(items) if items else None

    def _edit(self) -> None:
        spec = TABLES["businesses"]
        item = self._pick("businesses")
        if item is None:
            return
        version = codec.version_of(item) or 0
        updated = {**item, "_version": {"N": str(version + 1)},
                   "updated_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                   "phone": {"S": f"+1-555-{self.rng.randint(1000, 9999)}"}}
        self.source.put_item(spec, updated, expected_version=version)
        self.stats.edits += 1
        self.stats.log.append(f"edit {item['business_id']['S']} -> v{version + 1}")

    def _keyword(self) -> None:
        business = self._pick("businesses")
        if business is None:
            return
        lang = self.rng.choice(("en", "es"))
        slug = f"demo-keyword-{self._counter}"
        item = codec.item_from_python({
            "business_id": business["business_id"]["S"], "keyword_id": f"{slug}#{lang}", "slug": slug,
            "keyword": slug.replace("-", " "), "language": lang, "search_intent": "commercial", "_version": 1,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.source.put_item(TABLES["keywords"], item, expected_version=None)
        self.stats.new_keywords += 1
        self.stats.log.append(f"new keyword {slug}#{lang}")

    def _soft_delete(self) -> None:
        item = self._pick("keywords")
        if item is None:
            return
        version = codec.version_of(item) or 0
        deleted = {**item, "_deleted": {"BOOL": True}, "_version": {"N": str(version + 1)}}
        self.source.put_item(TABLES["keywords"], deleted, expected_version=version)
        self.stats.soft_deletes += 1
        self.stats.log.append(f"soft delete {item['keyword_id']['S']}")
