"""Pure translation of one DynamoDB Streams record into a `Change`: upsert, delete, or dead letter.

No I/O here. A record that cannot be applied safely becomes a dead letter with a reason; it never
raises, so one bad record can never block a shard.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, NamedTuple

from seo_sync import codec
from seo_sync.errors import CodecError
from seo_sync.schema import TableSpec

Kind = Literal["upsert", "delete", "dead"]
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class Change(NamedTuple):
    """One record's effect on one cache row.

    A NamedTuple rather than a frozen dataclass: just as immutable, and about five times cheaper
    to build, which counts at one per stream record.
    """

    kind: Kind
    table: str
    key: tuple[str, ...]
    seq: str  # the record's sequence number (compare as integers)
    item: codec.Item | None = None  # the new image for an upsert
    version: int | None = None  # usable `_version` of the new image (upsert, soft delete) or old image (REMOVE)
    event: str = ""  # INSERT / MODIFY / REMOVE
    hard: bool = False  # a REMOVE (hard or TTL delete), as opposed to a soft delete
    ttl: bool = False  # a REMOVE done by DynamoDB's TTL process
    created_at: float | None = None  # ApproximateCreationDateTime, epoch seconds
    reason: str | None = None  # why a dead letter is dead (its key is () when the record has no usable key)
    raw: str | None = None  # the record as JSON text, for dead letters
    row: tuple[Any, ...] | None = None  # codec.row_values(item), when to_change already built it


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


def _dead(spec: TableSpec, record: dict[str, Any], seq: str, reason: str, key: tuple[str, ...] = ()) -> Change:
    return Change("dead", spec.name, key, seq, reason=reason, raw=_raw_json(record),
                  event=str(record.get("eventName", "")))


def created_at_of(record: dict[str, Any]) -> float | None:
    """The record's ApproximateCreationDateTime as epoch seconds (None if absent)."""
    dyn = record.get("dynamodb") if isinstance(record, dict) else None
    return _created_at(dyn) if isinstance(dyn, dict) else None


def arrival_of(record: dict[str, Any]) -> float | None:
    """When the record reached its stream, epoch seconds (Kinesis's ApproximateArrivalTimestamp,
    which `kinesis_records.unwrap` keeps as `kinesisArrival`); None when the feed does not say."""
    t = record.get("kinesisArrival") if isinstance(record, dict) else None
    if isinstance(t, datetime):
        return t.timestamp()
    if isinstance(t, int | float) and not isinstance(t, bool):
        return float(t)
    return None


def sequence_of(record: dict[str, Any]) -> str:
    """The record's sequence number ('' if it has none)."""
    dyn = record.get("dynamodb") or {}
    return str(dyn.get("SequenceNumber", ""))


def to_change(spec: TableSpec, record: dict[str, Any]) -> Change:
    """Translate one GetRecords record for table `spec`; never raises.

    For an upsert the new image is validated and turned into its cache row in the same pass
    (codec.row_values), so applying the change does not walk the image again.
    """
    seq = sequence_of(record)
    key: tuple[str, ...] = ()  # known once the Keys parse: a dead letter then names its item
    try:
        dyn = record.get("dynamodb") or {}
        event = record.get("eventName")
        created = _created_at(dyn)
        keys = dyn.get("Keys")
        if event not in ("INSERT", "MODIFY", "REMOVE"):
            return _dead(spec, record, seq, f"unknown eventName {str(event)[:30]!r}")
        if not isinstance(keys, dict):
            return _dead(spec, record, seq, "record has no Keys")
        key_names = spec.key_names
        key_values = []
        for k in key_names:  # each key attribute a single non-empty S, and no other
            kav = keys.get(k)
            kv = kav.get("S") if type(kav) is dict and len(kav) == 1 else None
            if type(kv) is not str or not kv or len(keys) != len(key_names):
                return _dead(spec, record, seq, f"key {sorted(keys)} does not match {list(key_names)}")
            key_values.append(kv)
        key = tuple(key_values)
        if event == "REMOVE":
            old = dyn.get("OldImage")
            version = None
            if isinstance(old, dict):
                codec.validate_item(old)
                version = codec.usable_version(old)
            identity = record.get("userIdentity") or {}
            ttl = identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL
            return Change("delete", spec.name, key, seq, version=version, event=event, hard=True,
                          ttl=ttl, created_at=created)
        new = dyn.get("NewImage")
        if not isinstance(new, dict):
            return _dead(spec, record, seq, "no NewImage: the stream view type must be NEW_AND_OLD_IMAGES "
                                            "or NEW_IMAGE", key)
        for k in key_names:
            if new.get(k) != keys[k]:
                codec.validate_item(new)  # a malformed image is reported as that first
                return _dead(spec, record, seq, f"NewImage key {k} differs from Keys", key)
        row = codec.row_values(spec, new)  # validates every attribute
        # The `_version` cell holds only a usable version (an int), else None: a string or decimal
        # `_version` is valid DynamoDB data that settles nothing.
        version = row[codec.version_index(spec)]
        if codec.is_deleted(new):
            return Change("delete", spec.name, key, seq, version=version, event=event, created_at=created)
        # Positional: keyword arguments would double the cost of building a NamedTuple.
        return Change("upsert", spec.name, key, seq, new, version, event, False, False, created, None, None, row)
    except CodecError as e:
        return _dead(spec, record, seq, str(e.message), key)
    except (TypeError, AttributeError, KeyError, ValueError) as e:
        return _dead(spec, record, seq, f"malformed record: {type(e).__name__}", key)


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
