"""Items as cache rows: typed columns, JSON columns with exact numbers, and `_extra` for the rest.

See schema.py for the column kinds. Every conversion is lossless: row_to_item(item_to_row(x)) == x.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_str  # the C string encoder of json.dumps(ensure_ascii=False)
from typing import Any

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
from seo_sync.schema import EXTRA_COLUMN, VERSION_ATTR, Column, TableSpec

_JSON_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# ---- JSON columns: M/L of JSON-native types, numbers as exact literals -------------------------


class _RawNumber(str):
    """A JSON number literal kept as its exact text."""


def _json_native(av: AttributeValue) -> bool:
    ((t, v),) = av.items()
    if t in ("S", "BOOL", "NULL"):
        return True
    if t == "N":
        return bool(_JSON_NUMBER_RE.fullmatch(v))
    if t == "M":
        return all(_json_native(x) for x in v.values())
    if t == "L":
        return all(_json_native(x) for x in v)
    return False


def _write_json(av: AttributeValue, out: list[str]) -> None:
    ((t, v),) = av.items()
    if t == "S":
        out.append(_json_str(v))
    elif t == "N":
        out.append(v)
    elif t == "BOOL":
        out.append("true" if v else "false")
    elif t == "NULL":
        out.append("null")
    elif t == "M":
        out.append("{")
        for i, k in enumerate(sorted(v)):
            if i:
                out.append(",")
            out.append(_json_str(k))
            out.append(":")
            _write_json(v[k], out)
        out.append("}")
    else:  # L
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _write_json(x, out)
        out.append("]")


def av_to_json_text(av: AttributeValue) -> str:
    """A JSON-native M or L as JSON text with exact number literals and sorted keys."""
    out: list[str] = []
    _write_json(av, out)
    return "".join(out)


def _from_plain(v: Any) -> AttributeValue:
    if isinstance(v, _RawNumber):
        return {"N": str(v)}
    if isinstance(v, str):
        return {"S": v}
    if isinstance(v, bool):
        return {"BOOL": v}
    if v is None:
        return {"NULL": True}
    if isinstance(v, dict):
        return {"M": {k: _from_plain(x) for k, x in v.items()}}
    if isinstance(v, list):
        return {"L": [_from_plain(x) for x in v]}
    raise CodecError(f"unexpected JSON value {v!r:.40}")


def json_text_to_av(text: str) -> AttributeValue:
    """Parse a JSON column back into its M or L AttributeValue, numbers exact."""
    try:
        obj = json.loads(text, parse_int=_RawNumber, parse_float=_RawNumber)
    except (ValueError, RecursionError) as e:
        raise CodecError(f"bad JSON in cache column: {e}") from None
    return _from_plain(obj)


# ---- cache rows --------------------------------------------------------------------------------


def _column_value(col: Column, av: AttributeValue) -> tuple[bool, Any]:
    """(fits, value): the cache value of `av` in `col`, or fits=False when the type does not fit."""
    ((t, v),) = av.items()
    if col.kind == "text":
        return (t == "S", v)
    if col.kind == "bool":
        return (t == "BOOL", int(bool(v)))
    if col.kind == "number":
        if t != "N":
            return (False, None)
        if CANONICAL_INT_RE.fullmatch(v):
            n = int(v)
            if _INT64_MIN <= n <= _INT64_MAX:
                return (True, n)
        return (True, v)
    # json
    if t in ("M", "L") and _json_native(av):
        return (True, av_to_json_text(av))
    return (False, None)


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


_SHAPES: dict[int, tuple[TableSpec, _RowShape]] = {}


def _row_shape(spec: TableSpec) -> _RowShape:
    """The row shape of `spec`, built once (hot path: one lookup per record)."""
    hit = _SHAPES.get(id(spec))
    if hit is None or hit[0] is not spec:
        names = spec.column_names
        cols = [*(Column(k, "text") for k in spec.key_names), *spec.columns, _VERSION_COLUMN]
        shape = _RowShape(slots={c.name: (names.index(c.name), _INLINE_TYPE[c.kind], c) for c in cols},
                          keys=tuple((names.index(k), k) for k in spec.key_names),
                          width=len(names), extra=names.index(EXTRA_COLUMN))
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
                            row[slot[0]] = n if _INT64_MIN <= n <= _INT64_MAX else v
                        else:
                            row[slot[0]] = check_number(v)
                        continue
                elif type(v) is bool:  # BOOL
                    row[slot[0]] = int(v)
                    continue
        if not isinstance(name, str):
            raise CodecError("attribute name is not a string")
        validate(av)
        if slot is not None:
            fits, value = _column_value(slot[2], av)
            if fits:
                row[slot[0]] = value
                continue
        extra.append((name, _extra_json(av)))
    for i, k in shape.keys:
        if not row[i] or not isinstance(row[i], str):
            raise CodecError(f"{spec.name}: key attribute {k!r} missing or not a non-empty string")
    if extra:
        # The text json.dumps(extra, sort_keys=True, separators=(",", ":"), ensure_ascii=False) gives.
        extra.sort()
        row[shape.extra] = "{" + ",".join([_json_str(k) + ":" + text for k, text in extra]) + "}"
    return tuple(row)


def item_to_row(spec: TableSpec, item: Item) -> dict[str, Any]:
    """The cache row of an item: keys, typed columns, `_version`, and `_extra` for the rest.

    Raises CodecError when an attribute is malformed or a key attribute is missing or not a string.
    """
    return dict(zip(spec.column_names, row_values(spec, item), strict=True))


def row_to_item(spec: TableSpec, row: dict[str, Any]) -> Item:
    """The DynamoDB item a cache row holds (inverse of item_to_row)."""
    item: Item = {k: {"S": row[k]} for k in spec.key_names}
    for col in (*spec.columns, _VERSION_COLUMN):
        value = row.get(col.name)
        if value is None:
            continue
        if col.kind == "text":
            item[col.name] = {"S": value}
        elif col.kind == "bool":
            item[col.name] = {"BOOL": bool(value)}
        elif col.kind == "number":
            item[col.name] = {"N": str(value)}
        else:
            item[col.name] = json_text_to_av(value)
    extra = row.get(EXTRA_COLUMN)
    if extra:
        for name, obj in json.loads(extra).items():
            item[name] = from_ddb_json(obj)
    return item
