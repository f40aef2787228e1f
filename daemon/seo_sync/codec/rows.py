"""Items as cache rows: typed columns, JSON columns, `_types` notes, and `_extra` for the rest.

See schema.py for the column kinds. Every conversion is lossless: row_to_item(item_to_row(x)) == x.
Numbers in number columns follow numbers.py (INTEGER / REAL when exact / exact TEXT); maps, lists
and sets in JSON columns follow jsoncols.py (natural JSON). What the column alone cannot say (a
set, binary, a number's exact spelling) is noted in `_types`: {column: {JSON Pointer: tag}}.
`_version` holds only a usable version (an integer that fits 64 bits); any other `_version` (a
string, a decimal) is kept in `_extra` like any attribute whose type does not fit its column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_str  # the C string encoder of json.dumps(ensure_ascii=False)
from typing import Any

from seo_sync.codec.jsoncols import JSON_TYPES, Notes, from_json_column, to_json_column
from seo_sync.codec.numbers import INT64_MAX, INT64_MIN, cell_text, number_cell
from seo_sync.codec.values import (
    CANONICAL_INT_RE,
    AttributeValue,
    Item,
    check_number,
    from_ddb_json,
    to_ddb_json,
    validate,
)
from seo_sync.errors import CodecError
from seo_sync.schema import EXTRA_COLUMN, TYPES_COLUMN, VERSION_ATTR, Column, TableSpec


def _column_value(col: Column, av: AttributeValue) -> tuple[bool, Any, Notes | None]:
    """(fits, value, notes): the cache value of `av` in `col`, or fits=False when the type does not fit."""
    ((t, v),) = av.items()
    if col.kind == "text":
        return (t == "S", v, None)
    if col.kind == "bool":
        return (t == "BOOL", int(bool(v)), None)
    if col.kind == "number":
        if t != "N":
            return (False, None, None)
        if col.name == VERSION_ATTR:  # only a usable version: an integer that fits 64 bits
            fits = bool(CANONICAL_INT_RE.fullmatch(v)) and INT64_MIN <= int(v) <= INT64_MAX
            return (fits, int(v) if fits else None, None)
        cell, exact = number_cell(v)
        return (True, cell, None if exact is None else {"": {"N": exact}})
    # json
    if t in JSON_TYPES:
        text, notes = to_json_column(av)
        return (True, text, notes or None)
    return (False, None, None)


_VERSION_COLUMN = Column(VERSION_ATTR, "number")


# The AttributeValue type each column kind takes on the fast path of row_values (json: never).
_INLINE_TYPE = {"text": "S", "number": "N", "bool": "BOOL", "json": None}


@dataclass(frozen=True)
class _RowShape:
    """Where each attribute of a spec's items goes in its cache row (spec.column_names order)."""

    # keys, typed columns and `_version` -> (row index, inline type, column)
    slots: dict[str, tuple[int, str | None, Column]]
    keys: tuple[tuple[int, str], ...]  # (row index, name) of the key attributes
    width: int
    extra: int  # row index of `_extra`
    types: int  # row index of `_types`


_SHAPES: dict[int, tuple[TableSpec, _RowShape]] = {}


def _row_shape(spec: TableSpec) -> _RowShape:
    """The row shape of `spec`, built once (hot path: one lookup per record)."""
    hit = _SHAPES.get(id(spec))
    if hit is None or hit[0] is not spec:
        names = spec.column_names
        cols = [*(Column(k, "text") for k in spec.key_names), *spec.columns, _VERSION_COLUMN]
        shape = _RowShape(slots={c.name: (names.index(c.name), _INLINE_TYPE[c.kind], c) for c in cols},
                          keys=tuple((names.index(k), k) for k in spec.key_names),
                          width=len(names), extra=names.index(EXTRA_COLUMN), types=names.index(TYPES_COLUMN))
        hit = (spec, shape)
        _SHAPES[id(spec)] = hit
    return hit[1]


def _extra_json(av: AttributeValue) -> str:
    """One validated attribute as `_extra` JSON text: exactly json.dumps(to_ddb_json(av), sorted, compact)."""
    ((t, v),) = av.items()
    if t in ("S", "N"):
        return '{"' + t + '":' + _json_str(v) + "}"
    if t == "BOOL":
        return '{"BOOL":true}' if v else '{"BOOL":false}'
    return json.dumps(to_ddb_json(av), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_values(spec: TableSpec, item: Item) -> tuple[Any, ...]:
    """Validate `item` and build its cache row (values in spec.column_names order) in one pass.

    Raises CodecError when any attribute is not a well-formed AttributeValue (as `validate_item`
    would) or a key attribute is missing or not a non-empty string. This is the hot path of
    applying stream records, so the common values (S in a text column, N in a number column, BOOL
    in a bool column, S or N in `_extra`) are checked and placed inline; everything else takes the
    general path (`validate`, then `_column_value` or `_extra_json`), which gives the same result
    for those too.
    """
    if not isinstance(item, dict):
        raise CodecError("item is not a map")
    shape = _row_shape(spec)
    slots = shape.slots
    row: list[Any] = [None] * shape.width
    extra: list[tuple[str, str]] = []
    notes: dict[str, Notes] = {}
    for name, av in item.items():
        slot = slots.get(name)
        if type(av) is dict and len(av) == 1:
            ((t, v),) = av.items()
            if slot is None:
                if t in ("S", "N") and type(v) is str and type(name) is str:
                    if t == "N":
                        check_number(v)
                    extra.append((name, '{"' + t + '":' + _json_str(v) + "}"))
                    continue
            elif t == slot[1]:
                if t == "S":
                    if type(v) is str:
                        row[slot[0]] = v
                        continue
                elif t == "N":
                    if type(v) is str:
                        if CANONICAL_INT_RE.fullmatch(v):  # <= 19 digits: valid, and may fit an INTEGER
                            n = int(v)
                            if INT64_MIN <= n <= INT64_MAX:
                                row[slot[0]] = n
                                continue
                        # anything else (a decimal, a `_version` that is no integer) takes the general path
                elif type(v) is bool:  # BOOL
                    row[slot[0]] = int(v)
                    continue
        if not isinstance(name, str):
            raise CodecError("attribute name is not a string")
        validate(av)
        if slot is not None:
            fits, value, column_notes = _column_value(slot[2], av)
            if fits:
                row[slot[0]] = value
                if column_notes:
                    notes[name] = column_notes
                continue
        extra.append((name, _extra_json(av)))
    for i, k in shape.keys:
        if not row[i] or not isinstance(row[i], str):
            raise CodecError(f"{spec.name}: key attribute {k!r} missing or not a non-empty string")
    if extra:
        # The text json.dumps(extra, sort_keys=True, separators=(",", ":"), ensure_ascii=False) gives.
        extra.sort()
        row[shape.extra] = "{" + ",".join([_json_str(k) + ":" + text for k, text in extra]) + "}"
    if notes:
        row[shape.types] = json.dumps(notes, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return tuple(row)


def item_to_row(spec: TableSpec, item: Item) -> dict[str, Any]:
    """The cache row of an item: keys, typed columns, `_version`, `_extra` for the rest, `_types` notes.

    Raises CodecError when an attribute is malformed or a key attribute is missing or not a string.
    """
    return dict(zip(spec.column_names, row_values(spec, item), strict=True))


def version_index(spec: TableSpec) -> int:
    """The index of `_version` in a row of `spec` (row_values order): an int there is a usable version."""
    return _row_shape(spec).slots[VERSION_ATTR][0]


def row_to_item(spec: TableSpec, row: dict[str, Any]) -> Item:
    """The DynamoDB item a cache row holds (inverse of item_to_row)."""
    item: Item = {k: {"S": row[k]} for k in spec.key_names}
    types = row.get(TYPES_COLUMN)
    notes: dict[str, Notes] = json.loads(types) if types else {}
    for col in (*spec.columns, _VERSION_COLUMN):
        value = row.get(col.name)
        if value is None:
            continue
        if col.kind == "text":
            item[col.name] = {"S": value}
        elif col.kind == "bool":
            item[col.name] = {"BOOL": bool(value)}
        elif col.kind == "number":
            exact = notes.get(col.name, {}).get("")
            item[col.name] = {"N": exact["N"] if isinstance(exact, dict) else cell_text(value)}
        else:
            item[col.name] = from_json_column(value, notes.get(col.name))
    extra = row.get(EXTRA_COLUMN)
    if extra:
        for name, obj in json.loads(extra).items():
            item[name] = from_ddb_json(obj)
    return item
