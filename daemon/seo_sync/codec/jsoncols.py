"""JSON columns: the natural JSON view of a map, list or set, and the type notes that undo it.

A reader parses a JSON column as plain JSON: a set is a sorted array, binary a base64 string, a
number its exact literal. What plain JSON cannot say (this array was a string set, this string was
binary, this number was spelled "1.50") is written beside the column as notes: a map from a JSON
Pointer (RFC 6901) into the column's value to a type tag. The notes of all columns of a row form
its `_types` column, so the exact DynamoDB item can always be rebuilt (export, backups,
`sync-to-dynamo`).

Tags: "SS", "NS", "BS" (the array at that pointer is that set), "B" (the string is base64 binary),
{"N": text} (the number's exact text), {"NS": [texts]} (a number set whose members' exact texts
are not all JSON literals, in the array's order).
"""

from __future__ import annotations

import base64
import binascii
import json
from json.encoder import encode_basestring as _json_str  # the C string encoder of json.dumps(ensure_ascii=False)
from typing import Any

from seo_sync.codec.numbers import canonical_text, is_json_number
from seo_sync.codec.values import AttributeValue, canonical
from seo_sync.errors import CodecError

Notes = dict[str, Any]  # JSON Pointer -> tag
JSON_TYPES = ("M", "L", "SS", "NS", "BS")  # what a JSON column holds; other types go to `_extra`


class _RawNumber(str):
    """A JSON number literal kept as its exact text."""


def _pointer(parent: str, token: str) -> str:
    return parent + "/" + token.replace("~", "~0").replace("/", "~1")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _number_literal(text: str, path: str, notes: Notes) -> str:
    if is_json_number(text):
        return text
    notes[path] = {"N": text}
    return canonical_text(text)


def _write(av: AttributeValue, path: str, out: list[str], notes: Notes) -> None:
    ((t, v),) = av.items()
    if t == "S":
        out.append(_json_str(v))
    elif t == "N":
        out.append(_number_literal(v, path, notes))
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
            _write(v[k], _pointer(path, k), out, notes)
        out.append("}")
    elif t == "L":
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _write(x, _pointer(path, str(i)), out, notes)
        out.append("]")
    elif t == "B":
        out.append('"' + _b64(bytes(v)) + '"')
        notes[path] = "B"
    elif t == "SS":
        out.append("[" + ",".join(_json_str(x) for x in sorted(v)) + "]")
        notes[path] = "SS"
    elif t == "BS":
        out.append("[" + ",".join('"' + _b64(x) + '"' for x in sorted(bytes(x) for x in v)) + "]")
        notes[path] = "BS"
    else:  # NS, in canonical (numeric) order
        members = canonical(av)["NS"]
        if all(is_json_number(x) for x in members):
            out.append("[" + ",".join(members) + "]")
            notes[path] = "NS"
        else:
            out.append("[" + ",".join(canonical_text(x) for x in members) + "]")
            notes[path] = {"NS": members}


def to_json_column(av: AttributeValue) -> tuple[str, Notes]:
    """A validated M, L or set as natural JSON text (sorted keys, exact numbers) and its type notes."""
    out: list[str] = []
    notes: Notes = {}
    _write(av, "", out, notes)
    return "".join(out), notes


def _plain(v: Any) -> AttributeValue:
    """A parsed JSON value with no notes anywhere below it."""
    if isinstance(v, _RawNumber):
        return {"N": str(v)}
    if isinstance(v, str):
        return {"S": v}
    if isinstance(v, bool):
        return {"BOOL": v}
    if v is None:
        return {"NULL": True}
    if isinstance(v, dict):
        return {"M": {k: _plain(x) for k, x in v.items()}}
    if isinstance(v, list):
        return {"L": [_plain(x) for x in v]}
    raise CodecError(f"unexpected JSON value {v!r:.40}")


def _noted(v: Any, tag: Any) -> AttributeValue:
    try:
        if tag == "B":
            return {"B": base64.b64decode(v, validate=True)}
        if tag == "SS":
            return {"SS": [str(x) for x in v]}
        if tag == "NS":
            return {"NS": [str(x) for x in v]}
        if tag == "BS":
            return {"BS": [base64.b64decode(x, validate=True) for x in v]}
        if isinstance(tag, dict) and set(tag) == {"N"}:
            return {"N": str(tag["N"])}
        if isinstance(tag, dict) and set(tag) == {"NS"}:
            return {"NS": [str(x) for x in tag["NS"]]}
    except (binascii.Error, TypeError, ValueError) as e:
        raise CodecError(f"JSON column value does not match its type note {tag!r:.20}: {e}") from None
    raise CodecError(f"unknown type note {tag!r:.40}")


def _with_notes(v: Any, path: str, notes: Notes) -> AttributeValue:
    tag = notes.get(path)
    if tag is not None:
        return _noted(v, tag)
    if isinstance(v, dict) and not isinstance(v, _RawNumber):
        return {"M": {k: _with_notes(x, _pointer(path, k), notes) for k, x in v.items()}}
    if isinstance(v, list):
        return {"L": [_with_notes(x, _pointer(path, str(i)), notes) for i, x in enumerate(v)]}
    return _plain(v)


def from_json_column(text: str, notes: Notes | None = None) -> AttributeValue:
    """Parse a JSON column back into its exact AttributeValue, numbers exact, notes applied."""
    try:
        obj = json.loads(text, parse_int=_RawNumber, parse_float=_RawNumber)
    except (ValueError, RecursionError) as e:
        raise CodecError(f"bad JSON in cache column: {e}") from None
    return _with_notes(obj, "", notes) if notes else _plain(obj)
