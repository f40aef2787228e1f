"""Lossless conversions: DynamoDB AttributeValue ⇄ cache row ⇄ DynamoDB JSON ⇄ plain Python.

One import for the five modules that do the work, which callers use as `codec.<name>`:
- values.py: validation, canonical form, DynamoDB JSON, content hashes, `_version`;
- numbers.py: numbers as INTEGER / REAL / exact TEXT cells;
- jsoncols.py: maps, lists and sets as natural JSON with type notes;
- rows.py: items as cache rows (typed columns, JSON columns, `_extra`, `_types`);
- plain.py: the plain-Python view used by the CLI.
"""

from __future__ import annotations

from decimal import Decimal

from seo_sync.codec.jsoncols import from_json_column, to_json_column
from seo_sync.codec.numbers import canonical_text, number_cell
from seo_sync.codec.plain import from_python, item_from_python, to_plain_json, to_python
from seo_sync.codec.rows import item_to_row, row_to_item, row_values, version_index
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
    usable_version,
    validate,
    validate_item,
    version_of,
)
from seo_sync.errors import CodecError

__all__ = [
    "TYPES", "AttributeValue", "CodecError", "Decimal", "Item", "canonical", "canonical_text", "check_number",
    "from_ddb_json", "from_json_column", "from_python", "is_deleted", "item_from_ddb_json", "item_from_python",
    "item_hash", "item_to_ddb_json", "item_to_row", "number_cell", "row_to_item", "row_values", "to_ddb_json",
    "to_json_column", "to_plain_json", "to_python", "usable_version", "validate", "validate_item", "version_index",
    "version_of",
]
