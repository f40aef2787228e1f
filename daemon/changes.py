"""Pure translation of one DynamoDB Streams record into a `Change`: upsert, delete, or dead letter.

No I/O here. A record that cannot be applied safely becomes a dead letter with a reason; it never
raises, so one bad record can never block a shard (DESIGN §3.5).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from daemon import codec
from daemon.errors import CodecError
from daemon.schema import TableSpec

Kind = Literal["upsert", "delete", "dead"]
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True, slots=True)
class Change:
    """One record's effect on one cache row."""

    kind: Kind
    table: str
    key: tuple[str, ...]
    seq: str  # the record's sequence number (compare as integers)
    item: codec.Item | None = None  # the new image for an upsert
    version: int | None = None  # `_version` of the new image (upsert, soft delete) or old image (REMOVE)
    event: str = ""  # INSERT / MODIFY / REMOVE
    hard: bool = False  # a REMOVE (hard or TTL delete), as opposed to a soft delete
    ttl: bool = False  # a REMOVE done by DynamoDB's TTL process
    created_at: float | None = None  # ApproximateCreationDateTime, epoch seconds
    reason: str | None = None  # why a dead letter is dead
    raw: str | None = None  # the record as JSON text, for dead letters


def _created_at(dyn: dict[str, Any]) -> float | None:
    ts = dyn.get("ApproximateCreationDateTime")
    if isinstance(ts, datetime):
        return ts.timestamp()
    if isinstance(ts, int | float):
        # Real DynamoDB sends whole seconds; moto sends milliseconds.
        return ts / 1000.0 if ts > 1e11 else float(ts)
    return None


def _raw_json(record: dict[str, Any]) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, bytes | bytearray):
            return {"$b64": codec.to_ddb_json({"B": bytes(o)})["B"]}
        if isinstance(o, datetime):
            return o.isoformat()
        return str(o)

    text = json.dumps(record, default=default, sort_keys=True)
    return text if len(text) <= 1_000_000 else text[:1_000_000]


def _dead(spec: TableSpec, record: dict[str, Any], seq: str, reason: str) -> Change:
    return Change("dead", spec.name, (), seq, reason=reason, raw=_raw_json(record),
                  event=str(record.get("eventName", "")))


def created_at_of(record: dict[str, Any]) -> float | None:
    """The record's ApproximateCreationDateTime as epoch seconds (None if absent)."""
    dyn = record.get("dynamodb") if isinstance(record, dict) else None
    return _created_at(dyn) if isinstance(dyn, dict) else None


_SIMPLE_N = re.compile(r"-?[1-9]\d{0,37}|0")


def _validate_image(item: Any) -> None:
    """codec.validate_item with a fast path for the common flat S / small-integer N / BOOL values."""
    if not isinstance(item, dict):
        raise CodecError("item is not a map")
    for name, av in item.items():
        if type(name) is str and type(av) is dict and len(av) == 1:
            v = av.get("S")
            if v is not None and type(v) is str:
                continue
            v = av.get("N")
            if v is not None and type(v) is str and _SIMPLE_N.fullmatch(v):
                continue
            if type(av.get("BOOL")) is bool:
                continue
        codec.validate_item({name: av})


def sequence_of(record: dict[str, Any]) -> str:
    """The record's sequence number ('' if it has none)."""
    dyn = record.get("dynamodb") or {}
    return str(dyn.get("SequenceNumber", ""))


def to_change(spec: TableSpec, record: dict[str, Any]) -> Change:
    """Translate one GetRecords record for table `spec`; never raises."""
    seq = sequence_of(record)
    try:
        dyn = record.get("dynamodb") or {}
        event = record.get("eventName")
        created = _created_at(dyn)
        keys = dyn.get("Keys")
        if event not in ("INSERT", "MODIFY", "REMOVE"):
            return _dead(spec, record, seq, f"unknown eventName {str(event)[:30]!r}")
        if not isinstance(keys, dict):
            return _dead(spec, record, seq, "record has no Keys")
        if len(keys) != len(spec.key_names) or any(
                type(keys.get(k)) is not dict or len(keys[k]) != 1 or type(keys[k].get("S")) is not str
                or not keys[k]["S"] for k in spec.key_names):
            return _dead(spec, record, seq, f"key {sorted(keys)} does not match {list(spec.key_names)}")
        key = tuple(keys[k]["S"] for k in spec.key_names)
        if event == "REMOVE":
            old = dyn.get("OldImage")
            version = None
            if isinstance(old, dict):
                _validate_image(old)
                version = codec.version_of(old)
            identity = record.get("userIdentity") or {}
            ttl = identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL
            return Change("delete", spec.name, key, seq, version=version, event=event, hard=True,
                          ttl=ttl, created_at=created)
        new = dyn.get("NewImage")
        if not isinstance(new, dict):
            return _dead(spec, record, seq, "no NewImage: the stream view type must be NEW_AND_OLD_IMAGES "
                                            "or NEW_IMAGE")
        _validate_image(new)
        for k in spec.key_names:
            if new.get(k) != keys[k]:
                return _dead(spec, record, seq, f"NewImage key {k} differs from Keys")
        version = codec.version_of(new)
        if codec.is_deleted(new):
            return Change("delete", spec.name, key, seq, version=version, event=event, created_at=created)
        return Change("upsert", spec.name, key, seq, item=new, version=version, event=event,
                      created_at=created)
    except CodecError as e:
        return _dead(spec, record, seq, str(e.message))
    except (TypeError, AttributeError, KeyError, ValueError) as e:
        return _dead(spec, record, seq, f"malformed record: {type(e).__name__}")


def collapse(changes: list[Change]) -> list[Change]:
    """Keep the last change per key, in stream order; dead letters are all kept.

    Within one shard the stream holds each item's writes in order, so the last one per key is the
    item's newest state; applying only it is equivalent and lets a batch apply as set operations.
    """
    last: dict[tuple[str, ...], int] = {}
    for i, c in enumerate(changes):
        if c.kind != "dead":
            last[c.key] = i
    return [c for i, c in enumerate(changes) if c.kind == "dead" or last.get(c.key) == i]
