"""Lossless conversions: DynamoDB AttributeValue ⇄ cache row ⇄ DynamoDB JSON ⇄ plain Python.

One import for the three modules that do the work, which callers use as `codec.<name>`:
- attribute_values.py: validation, canonical form, DynamoDB JSON, content hashes, `_version`;
- rows.py: items as cache rows (typed columns, JSON columns, `_extra`);
- pyvalues.py: the plain-Python view used by the CLI.
"""

from __future__ import annotations

from decimal import Decimal

from seo_sync.codec.plain import from_python, item_from_python, to_plain_json, to_python
from seo_sync.codec.rows import av_to_json_text, item_to_row, json_text_to_av, row_to_item, row_values
from seo_sync.codec.values import (
    TYPES,
    AttributeValue,
    Item,
    canonical,
    check_number,
    from_ddb_json,
    is_deleted,
    item_from_ddb_json,
    item_hash,
    item_to_ddb_json,
    to_ddb_json,
    validate,
    validate_item,
    version_of,
)
from seo_sync.errors import CodecError

__all__ = [
    "TYPES", "AttributeValue", "CodecError", "Decimal", "Item", "av_to_json_text", "canonical", "check_number",
    "from_ddb_json", "from_python", "is_deleted", "item_from_ddb_json", "item_from_python", "item_hash",
    "item_to_ddb_json", "item_to_row", "json_text_to_av", "row_to_item", "row_values", "to_ddb_json",
    "to_plain_json", "to_python", "validate", "validate_item", "version_of",
]
