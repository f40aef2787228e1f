"""Kinesis Data Streams for DynamoDB records, unwrapped into the DynamoDB Streams record shape.

DynamoDB writes each item change to Kinesis as a JSON document in the record's `Data`: `awsRegion,
eventID, eventName, userIdentity, recordFormat, tableName, eventSource` and `dynamodb {Keys,
NewImage, OldImage, SizeBytes, ApproximateCreationDateTime, ApproximateCreationDateTimePrecision}`.
The apply path reads the shape of a DynamoDB Streams record, so each one is turned into that:
the images become AttributeValues (binary values decoded from base64), the Kinesis sequence
number becomes `dynamodb.SequenceNumber` (a KDS record has none of its own), and the creation
time becomes epoch seconds with its microseconds kept, whatever precision the stream declared.

A `Data` that is not such a document is still handed on, as a record with no event name, so the
apply path dead-letters it and the shard moves past it: DynamoDB never writes one, and a record
must never block a shard.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from seo_sync import codec
from seo_sync.errors import CodecError

MICROSECOND = "MICROSECOND"
KDS_IMAGES = ("Keys", "NewImage", "OldImage")


def creation_seconds(value: Any, precision: str | None) -> float | None:
    """ApproximateCreationDateTime as epoch seconds: milliseconds by default, µs when so declared."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if precision == MICROSECOND:
        return value / 1_000_000.0
    return value / 1000.0


def _data_text(data: Any) -> str:
    """The record's Data as text: boto3 hands bytes (already base64-decoded), the fakes may hand str."""
    if isinstance(data, bytes | bytearray):
        return bytes(data).decode("utf-8")
    if isinstance(data, str):
        return data
    raise ValueError(f"Data of type {type(data).__name__}")


def _undecodable(seq: str, data: Any, reason: str) -> dict[str, Any]:
    """A record the apply path dead-letters (no eventName), carrying what arrived for the operator."""
    if isinstance(data, bytes | bytearray):
        shown = base64.b64encode(bytes(data)[:4096]).decode("ascii")
    else:
        shown = str(data)[:4096]
    return {"eventName": None, "eventSource": "aws:kinesis", "kinesisData": shown, "reason": reason,
            "dynamodb": {"SequenceNumber": seq}}


def unwrap(kinesis_record: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(tableName, the record in DynamoDB Streams shape) for one Kinesis record; never raises."""
    seq = str(kinesis_record.get("SequenceNumber", ""))
    data = kinesis_record.get("Data")
    try:
        doc = json.loads(_data_text(data))
        if not isinstance(doc, dict) or not isinstance(doc.get("dynamodb"), dict):
            return None, _undecodable(seq, data, "Data holds no dynamodb object")
    except (ValueError, UnicodeDecodeError) as e:
        return None, _undecodable(seq, data, f"Data is not JSON: {type(e).__name__}")
    dyn_in: dict[str, Any] = doc["dynamodb"]
    dyn: dict[str, Any] = {"SequenceNumber": seq}
    for name in KDS_IMAGES:
        image = dyn_in.get(name)
        if image is None:
            continue
        try:
            dyn[name] = codec.item_from_ddb_json(image)
        except CodecError:
            dyn[name] = image  # left as it came: the apply path names what is wrong with it
    created = creation_seconds(dyn_in.get("ApproximateCreationDateTime"),
                               dyn_in.get("ApproximateCreationDateTimePrecision"))
    if created is not None:
        dyn["ApproximateCreationDateTime"] = created
    if "SizeBytes" in dyn_in:
        dyn["SizeBytes"] = dyn_in["SizeBytes"]
    dyn["StreamViewType"] = "NEW_AND_OLD_IMAGES"
    record: dict[str, Any] = {
        "eventID": doc.get("eventID"), "eventName": doc.get("eventName"), "eventSource": "aws:dynamodb",
        "awsRegion": doc.get("awsRegion"), "dynamodb": dyn,
    }
    if doc.get("userIdentity") is not None:
        record["userIdentity"] = doc["userIdentity"]
    arrived = kinesis_record.get("ApproximateArrivalTimestamp")
    if arrived is not None:
        record["kinesisArrival"] = arrived
    table = doc.get("tableName")
    return (table if isinstance(table, str) else None), record


def wrap(table: str, event: str, keys: dict[str, Any], new: dict[str, Any] | None, old: dict[str, Any] | None,
         created_us: int, *, region: str = "us-east-1", event_id: str = "",
         user_identity: dict[str, Any] | None = None) -> bytes:
    """The `Data` DynamoDB writes for one item change (images in DynamoDB JSON), µs precision.

    What the demo's relay and the tests' fake put into a stream, so both speak the format above.
    """
    dyn: dict[str, Any] = {"ApproximateCreationDateTime": created_us, "Keys": keys,
                           "ApproximateCreationDateTimePrecision": MICROSECOND}
    if new is not None:
        dyn["NewImage"] = new
    if old is not None:
        dyn["OldImage"] = old
    doc: dict[str, Any] = {"awsRegion": region, "eventID": event_id, "eventName": event,
                           "recordFormat": "application/json", "tableName": table,
                           "eventSource": "aws:dynamodb", "dynamodb": dyn}
    if user_identity is not None:
        doc["userIdentity"] = user_identity
    text = json.dumps(doc, separators=(",", ":"))
    dyn["SizeBytes"] = len(text)
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
