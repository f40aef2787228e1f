"""Lossless conversions: DynamoDB AttributeValue ⇄ cache row ⇄ DynamoDB JSON ⇄ plain Python.

The internal form of an item is the low-level client's: ``{"attr": {"S": "x"}, ...}`` with bytes
for B and BS. Numbers stay the exact strings DynamoDB sent; nothing on the way is a float.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring as _json_str  # the C string encoder of json.dumps(ensure_ascii=False)
from typing import Any

from daemon.errors import CodecError
from daemon.schema import EXTRA_COLUMN, VERSION_ATTR, Column, TableSpec

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

TYPES = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
_JSON_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_CANONICAL_INT_RE = re.compile(r"(?:0|-?[1-9]\d{0,18})")
# A decimal literal without exponent; at most 38 characters it is always a valid DynamoDB number.
_PLAIN_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
_VERSION_RE = re.compile(r"-?\d{1,19}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def check_number(text: str) -> str:
    """Return `text` if it is a DynamoDB number (<= 38 significant digits, 1E-130 <= |n| < 1E+126)."""
    if not isinstance(text, str) or not text or len(text) > 200:
        raise CodecError(f"not a number string: {text!r:.60}")
    # Fast path (most numbers): <= 38 digits, and with no exponent |n| is between 1E-36 and 1E+38.
    if len(text) <= 38 and _PLAIN_NUMBER_RE.fullmatch(text):
        return text
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise CodecError(f"not a number: {text!r:.60}") from None
    if not d.is_finite():
        raise CodecError(f"not a finite number: {text!r:.60}")
    if d.is_zero():
        return text
    # Significant digits: the coefficient without trailing zeros. (Not d.normalize(): with an
    # exponent like 1E1000000 it raised decimal.Overflow instead of a CodecError.)
    coefficient = d.as_tuple().digits
    significant = len(coefficient)
    while coefficient[significant - 1] == 0:  # d is not zero, so a non-zero digit stops this
        significant -= 1
    if significant > 38:
        raise CodecError(f"number {text:.60} has more than 38 digits (significant)")
    if not -130 <= d.adjusted() <= 125:
        raise CodecError(f"number {text:.60} is outside DynamoDB's range (1E-130 to 9.9E+125)")
    return text


def validate(av: AttributeValue, depth: int = 0) -> None:
    """Raise CodecError unless `av` is a well-formed AttributeValue (recursively)."""
    if depth > 64:
        raise CodecError("attribute nesting deeper than 64 levels")
    if not isinstance(av, dict) or len(av) != 1:
        raise CodecError(f"not an AttributeValue: {str(av)[:60]}")
    ((t, v),) = av.items()
    if t == "S":
        ok = isinstance(v, str)
    elif t == "N":
        check_number(v)
        ok = True
    elif t == "B":
        ok = isinstance(v, bytes | bytearray)
    elif t == "BOOL":
        ok = isinstance(v, bool)
    elif t == "NULL":
        ok = v is True
    elif t == "M":
        ok = isinstance(v, dict) and all(isinstance(k, str) for k in v)
        if ok:
            for x in v.values():
                validate(x, depth + 1)
    elif t == "L":
        ok = isinstance(v, list)
        if ok:
            for x in v:
                validate(x, depth + 1)
    elif t == "SS":
        ok = isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)
    elif t == "NS":
        ok = isinstance(v, list) and bool(v)
        if ok:
            for x in v:
                check_number(x)
    elif t == "BS":
        ok = isinstance(v, list) and bool(v) and all(isinstance(x, bytes | bytearray) for x in v)
    else:
        raise CodecError(f"unknown AttributeValue type {t!r:.20}")
    if not ok:
        raise CodecError(f"malformed {t} value: {str(v)[:60]}")


def validate_item(item: Item) -> None:
    """Raise CodecError unless every attribute of `item` is a well-formed AttributeValue."""
    if not isinstance(item, dict):
        raise CodecError("item is not a map")
    for name, av in item.items():
        if not isinstance(name, str):
            raise CodecError("attribute name is not a string")
        validate(av)


def _num_key(text: str) -> tuple[Decimal, str]:
    return (Decimal(text), text)


def canonical(av: AttributeValue) -> AttributeValue:
    """The same value with set members in a canonical (sorted) order, recursively."""
    ((t, v),) = av.items()
    if t == "M":
        return {"M": {k: canonical(x) for k, x in sorted(v.items())}}
    if t == "L":
        return {"L": [canonical(x) for x in v]}
    if t == "SS":
        return {"SS": sorted(v)}
    if t == "NS":
        return {"NS": sorted(v, key=_num_key)}
    if t == "BS":
        return {"BS": sorted(bytes(x) for x in v)}
    if t == "B":
        return {"B": bytes(v)}
    return {t: v}


# ---- DynamoDB JSON (the text form: binary as base64) -------------------------------------------


def to_ddb_json(av: AttributeValue) -> Any:
    """AttributeValue → JSON-serialisable DynamoDB JSON (binary as base64, sets sorted)."""
    ((t, v),) = canonical(av).items()
    if t == "B":
        return {"B": base64.b64encode(v).decode("ascii")}
    if t == "BS":
        return {"BS": [base64.b64encode(x).decode("ascii") for x in v]}
    if t == "M":
        return {"M": {k: to_ddb_json(x) for k, x in v.items()}}
    if t == "L":
        return {"L": [to_ddb_json(x) for x in v]}
    return {t: v}


def from_ddb_json(obj: Any) -> AttributeValue:
    """DynamoDB JSON → AttributeValue; raises CodecError on anything malformed."""
    if not isinstance(obj, dict) or len(obj) != 1:
        raise CodecError(f"not DynamoDB JSON: {str(obj)[:60]}")
    ((t, v),) = obj.items()
    try:
        if t == "B":
            av: AttributeValue = {"B": base64.b64decode(v, validate=True)}
        elif t == "BS":
            av = {"BS": [base64.b64decode(x, validate=True) for x in v]}
        elif t == "M":
            av = {"M": {k: from_ddb_json(x) for k, x in v.items()}}
        elif t == "L":
            av = {"L": [from_ddb_json(x) for x in v]}
        else:
            av = {t: v}
    except (ValueError, TypeError, AttributeError) as e:
        raise CodecError(f"malformed {t} value in DynamoDB JSON: {e}") from None
    validate(av)
    return av


def item_to_ddb_json(item: Item) -> dict[str, Any]:
    """An item in DynamoDB JSON with sorted attribute names."""
    return {k: to_ddb_json(item[k]) for k in sorted(item)}


def item_from_ddb_json(obj: Any) -> Item:
    """Parse an item from DynamoDB JSON; raises CodecError on anything malformed."""
    if not isinstance(obj, dict):
        raise CodecError("item is not a JSON object")
    return {k: from_ddb_json(v) for k, v in obj.items()}


def item_hash(item: Item) -> str:
    """A stable content hash of an item (sha256 of its canonical DynamoDB JSON)."""
    text = json.dumps(item_to_ddb_json(item), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        if _CANONICAL_INT_RE.fullmatch(v):
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
                        if _CANONICAL_INT_RE.fullmatch(v):  # <= 19 digits: valid, and may fit an INTEGER
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


def version_of(item: Item) -> int | None:
    """The item's `_version` as an int, None when absent; CodecError when present but not an integer."""
    av = item.get(VERSION_ATTR)
    if av is None:
        return None
    text = av.get("N") if isinstance(av, dict) else None
    if not isinstance(text, str) or not _VERSION_RE.fullmatch(text):
        raise CodecError(f"_version is not an integer: {str(av)[:40]}")
    return int(text)


def is_deleted(item: Item) -> bool:
    """True when the item carries `_deleted: true` (a soft delete)."""
    return item.get("_deleted") == {"BOOL": True}


# ---- plain Python (the CLI's view) -------------------------------------------------------------


def to_python(av: AttributeValue) -> Any:
    """AttributeValue → str / Decimal / bytes / bool / None / dict / list / set."""
    ((t, v),) = av.items()
    if t == "N":
        return Decimal(v)
    if t == "NS":
        return {Decimal(x) for x in v}
    if t == "SS":
        return set(v)
    if t == "BS":
        return {bytes(x) for x in v}
    if t == "B":
        return bytes(v)
    if t == "NULL":
        return None
    if t == "M":
        return {k: to_python(x) for k, x in v.items()}
    if t == "L":
        return [to_python(x) for x in v]
    return v


def from_python(value: Any) -> AttributeValue:
    """Plain Python → AttributeValue (int and Decimal become N; float is refused as lossy)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": check_number(str(value))}
    if isinstance(value, Decimal):
        return {"N": check_number(str(value))}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, dict):
        return {"M": {str(k): from_python(x) for k, x in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [from_python(x) for x in value]}
    if isinstance(value, set | frozenset):
        members = list(value)
        if not members:
            raise CodecError("DynamoDB sets cannot be empty")
        if all(isinstance(x, str) for x in members):
            return canonical({"SS": members})
        if all(isinstance(x, int | Decimal) and not isinstance(x, bool) for x in members):
            return canonical({"NS": [check_number(str(x)) for x in members]})
        if all(isinstance(x, bytes | bytearray) for x in members):
            return canonical({"BS": [bytes(x) for x in members]})
        raise CodecError("a set must hold only strings, only numbers, or only binary")
    if isinstance(value, float):
        raise CodecError("floats are not accepted (they lose digits); use Decimal or a string")
    raise CodecError(f"cannot store a {type(value).__name__} in DynamoDB")


def item_from_python(obj: dict[str, Any]) -> Item:
    """A plain-Python dict → item."""
    return {str(k): from_python(v) for k, v in obj.items()}


def to_plain_json(av: AttributeValue) -> Any:
    """A readable JSON value: exact numbers become int or Decimal-as-string only when not integral.

    Used for human-facing output only (tables); exports use DynamoDB JSON, which is lossless.
    """
    ((t, v),) = av.items()
    if t == "N":
        return int(v) if _CANONICAL_INT_RE.fullmatch(v) else v
    if t == "NS":
        return [int(x) if _CANONICAL_INT_RE.fullmatch(x) else x for x in canonical(av)["NS"]]
    if t == "SS":
        return sorted(v)
    if t in ("B", "BS"):
        return to_ddb_json(av)[t]
    if t == "NULL":
        return None
    if t == "M":
        return {k: to_plain_json(x) for k, x in sorted(v.items())}
    if t == "L":
        return [to_plain_json(x) for x in v]
    return v
