"""aws/kinesis_records.py: a KDS record's Data unwrapped into the record shape the apply path takes."""

from __future__ import annotations

import json

from seo_sync import codec
from seo_sync.aws.kinesis_records import creation_seconds, unwrap, wrap
from seo_sync.changes import created_at_of, to_change
from seo_sync.schema import BUSINESSES

SEQ = "49590338271490256608559692538361571095921575989136588898"


def kds(data: bytes | str, seq: str = SEQ) -> dict:
    """A Kinesis record as boto3 hands it (Data already base64-decoded)."""
    return {"SequenceNumber": seq, "Data": data, "PartitionKey": "pk"}


def test_creation_time_in_ms_and_in_us_are_the_same_moment():
    """A millisecond and a microsecond creation time of the same moment read as the same epoch seconds."""
    assert creation_seconds(1_700_000_000_123, None) == 1_700_000_000.123
    assert creation_seconds(1_700_000_000_123_456, "MICROSECOND") == 1_700_000_000.123456
    assert creation_seconds("soon", None) is None


def test_an_insert_becomes_an_upsert_with_the_kinesis_sequence_number():
    """A KDS INSERT reads as a DynamoDB Streams INSERT: Keys, NewImage, sequence and creation time in µs."""
    item = codec.item_from_python({"business_id": "b1", "name": "x", "_version": 4, "logo": b"\x00\xff"})
    data = wrap("seo_businesses", "INSERT", codec.item_to_ddb_json({"business_id": item["business_id"]}),
                codec.item_to_ddb_json(item), None, 1_700_000_000_654_321)
    table, rec = unwrap(kds(data))
    assert table == "seo_businesses"
    assert rec["dynamodb"]["SequenceNumber"] == SEQ
    assert rec["dynamodb"]["NewImage"]["logo"] == {"B": b"\x00\xff"}
    assert created_at_of(rec) == 1_700_000_000.654321
    change = to_change(BUSINESSES, rec)
    assert (change.kind, change.key, change.version, change.seq) == ("upsert", ("b1",), 4, SEQ)


def test_a_ttl_remove_keeps_its_service_identity():
    """A REMOVE by DynamoDB's TTL keeps the userIdentity that marks it as one."""
    old = codec.item_from_python({"business_id": "b1", "_version": 2})
    data = wrap("seo_businesses", "REMOVE", {"business_id": {"S": "b1"}}, None, codec.item_to_ddb_json(old),
                1_700_000_000_000_000,
                user_identity={"type": "Service", "principalId": "dynamodb.amazonaws.com"})
    change = to_change(BUSINESSES, unwrap(kds(data))[1])
    assert (change.kind, change.hard, change.ttl, change.version) == ("delete", True, True, 2)


def test_undecodable_data_becomes_a_dead_letter_not_an_error():
    """Data that is not DynamoDB's JSON is handed on as a record the apply path dead-letters."""
    for data in (b"\xff\xfe not json", json.dumps({"eventName": "INSERT"}).encode()):
        table, rec = unwrap(kds(data))
        assert table is None
        change = to_change(BUSINESSES, rec)
        assert change.kind == "dead" and change.seq == SEQ
