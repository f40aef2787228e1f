"""The plain-Python view of AttributeValues (the CLI's): str, Decimal, bytes, bool, None, dict, list, set."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from seo_sync.codec.values import CANONICAL_INT_RE, AttributeValue, Item, canonical, check_number, to_ddb_json
from seo_sync.errors import CodecError


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
        return int(v) if CANONICAL_INT_RE.fullmatch(v) else v
    if t == "NS":
        return [int(x) if CANONICAL_INT_RE.fullmatch(x) else x for x in canonical(av)["NS"]]
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
