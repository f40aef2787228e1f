"""DynamoDB AttributeValues: validation, canonical form, DynamoDB JSON and content hashes.

The internal form of an item is the low-level client's: ``{"attr": {"S": "x"}, ...}`` with bytes
for B and BS. Numbers stay the exact strings DynamoDB sent; nothing on the way is a float.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from seo_sync.errors import CodecError
from seo_sync.schema import VERSION_ATTR

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

TYPES = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
# A canonical integer of at most 19 digits (what may be stored as a 64-bit INTEGER, after a range check).
CANONICAL_INT_RE = re.compile(r"(?:0|-?[1-9]\d{0,18})")
# A decimal literal without exponent; at most 38 characters it is always a valid DynamoDB number.
_PLAIN_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
_VERSION_RE = re.compile(r"-?\d{1,19}")


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


def version_of(item: Item) -> int | None:
    """The item's `_version` as an int, None when absent; CodecError when present but not an integer."""
    av = item.get(VERSION_ATTR)
    if av is None:
        return None
    text = av.get("N") if isinstance(av, dict) else None
    if not isinstance(text, str) or not _VERSION_RE.fullmatch(text):
        raise CodecError(f"_version is not an integer: {str(av)[:40]}")
    return int(text)


def usable_version(item: Item | None) -> int | None:
    """The item's `_version` when it is usable (an integer N that fits 64 bits), else None; never raises.

    DynamoDB accepts any `_version` (a string, a decimal): such an item is valid and is cached, its
    `_version` simply settles nothing (the sync paths use this, never `version_of`).
    """
    av = item.get(VERSION_ATTR) if isinstance(item, dict) else None
    text = av.get("N") if isinstance(av, dict) and len(av) == 1 else None
    if not isinstance(text, str) or not CANONICAL_INT_RE.fullmatch(text):
        return None
    n = int(text)
    return n if -(2**63) <= n <= 2**63 - 1 else None


def is_deleted(item: Item) -> bool:
    """True when the item carries `_deleted: true` (a soft delete)."""
    return item.get("_deleted") == {"BOOL": True}
