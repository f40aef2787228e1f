"""The orjson fast path for Scan and GetRecords answers (aws/raw_responses.py) against botocore's own parse.

Both sides are real botocore clients of the pinned version; a `before-send` handler answers every
request with canned bytes, so the hook runs exactly where it runs against DynamoDB (after signing,
before botocore's parser) and the CRC32 check and error handling stay botocore's.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st

from seo_sync import codec
from seo_sync.aws import raw_responses
from seo_sync.aws.tables import Source
from seo_sync.cache.writer import Cache
from seo_sync.config import AwsSettings
from seo_sync.errors import CodecError
from seo_sync.schema import TABLES


class _Raw:
    """The urllib3-like body botocore reads an AWSResponse's content from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class CannedEndpoint:
    """Answers every request of the clients it is attached to with the bytes in `body`."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.status = 200

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "test",
                   "x-amz-crc32": str(zlib.crc32(self.body)), "Content-Length": str(len(self.body))}
        return AWSResponse(request.url, self.status, headers, _Raw(self.body))

    def client(self, service: str, fast: bool) -> Any:
        """A botocore client of `service` answered by this endpoint, with or without the fast path."""
        c = boto3.session.Session().client(
            service, region_name="us-east-1", endpoint_url="http://canned.invalid",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}, account_id_endpoint_mode="disabled"))
        c.meta.events.register_first(f"before-send.{c.meta.service_model.service_id.hyphenize()}", self)
        if fast:
            assert raw_responses.install(c)
        return c


@pytest.fixture(scope="module")
def canned() -> CannedEndpoint:
    """One canned endpoint for the module (hypothesis reuses its clients)."""
    return CannedEndpoint()


@pytest.fixture(scope="module")
def tables(canned: CannedEndpoint) -> tuple[Any, Any]:
    """(botocore's parse, the fast path) for DynamoDB."""
    return canned.client("dynamodb", False), canned.client("dynamodb", True)


@pytest.fixture(scope="module")
def streams(canned: CannedEndpoint) -> tuple[Any, Any]:
    """(botocore's parse, the fast path) for DynamoDB Streams."""
    return canned.client("dynamodbstreams", False), canned.client("dynamodbstreams", True)


def wire(av: dict[str, Any]) -> dict[str, Any]:
    """An AttributeValue as DynamoDB sends it (B and BS base64, everything else as is)."""
    ((t, v),) = av.items()
    if t == "B":
        return {"B": base64.b64encode(v).decode()}
    if t == "BS":
        return {"BS": [base64.b64encode(x).decode() for x in v]}
    if t == "M":
        return {"M": {k: wire(x) for k, x in v.items()}}
    if t == "L":
        return {"L": [wire(x) for x in v]}
    return {t: v}


def wire_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as DynamoDB sends it."""
    return {k: wire(v) for k, v in item.items()}


numbers = st.one_of(st.integers(min_value=-(10**38 - 1), max_value=10**38 - 1).map(str),
                    st.sampled_from(["0", "-0", "1E-130", "9.9999999999999999999999999999999999999E+125", "0.10",
                                     "007", "-1.5e+3", "123456789012345678901234567890.12345678"]))
text = st.text(max_size=20)  # any code point, escapes and quotes included
scalars = st.one_of(
    text.map(lambda v: {"S": v}), numbers.map(lambda v: {"N": v}), st.binary(max_size=24).map(lambda v: {"B": v}),
    st.booleans().map(lambda v: {"BOOL": v}), st.just({"NULL": True}),
    st.lists(text, min_size=1, max_size=4, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, max_size=4, unique=True).map(lambda v: {"NS": v}),
    st.lists(st.binary(max_size=8), min_size=1, max_size=4, unique=True).map(lambda v: {"BS": v}))
values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4).map(lambda v: {"L": v}),
                                                      st.dictionaries(text, kids, max_size=4).map(lambda v: {"M": v})),
                      max_leaves=16)
items = st.dictionaries(st.text(min_size=1, max_size=12), values, min_size=1, max_size=6)
key_values = st.one_of(text.map(lambda v: {"S": v}), st.binary(min_size=1, max_size=8).map(lambda v: {"B": v}))
keys = st.dictionaries(st.sampled_from(["pk", "sk"]), key_values, min_size=1)


def _both(canned: CannedEndpoint, pair: tuple[Any, Any], op: str, body: bytes, **kwargs: Any) -> tuple[Any, Any]:
    canned.body, canned.status = body, 200
    slow, fast = (getattr(c, op)(**kwargs) for c in pair)
    for answer in (slow, fast):
        answer["ResponseMetadata"].pop("RetryAttempts", None)
    return slow, fast


@given(st.lists(items, max_size=5), st.none() | keys, st.booleans())
def test_scan_fast_path_gives_botocores_items(canned: CannedEndpoint, tables: tuple[Any, Any],
                                               page: list[dict[str, Any]], last: dict[str, Any] | None,
                                               ascii_only: bool) -> None:
    """Every attribute type, nested at any depth, B/BS in items and keys: the fast Scan answer equals botocore's."""
    doc: dict[str, Any] = {"Items": [wire_item(i) for i in page], "Count": len(page), "ScannedCount": len(page)}
    if last is not None:
        doc["LastEvaluatedKey"] = wire_item(last)
    body = json.dumps(doc, ensure_ascii=ascii_only).encode()
    slow, fast = _both(canned, tables, "scan", body, TableName="t")
    assert fast == slow
    assert fast["Items"] == page  # and both are the items that were sent: bytes for B, numbers as sent


@given(st.lists(st.tuples(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]), keys, st.none() | items,
                          st.none() | items, st.integers(min_value=0, max_value=2**31)), max_size=4))
def test_get_records_fast_path_gives_botocores_records(canned: CannedEndpoint, streams: tuple[Any, Any],
                                                        records: list[tuple[Any, ...]]) -> None:
    """Stream records (keys, both images, timestamps, identity): the fast path's GetRecords answer equals botocore's."""
    wired = []
    for i, (event, key, new, old, when) in enumerate(records):
        dyn: dict[str, Any] = {"ApproximateCreationDateTime": when, "Keys": wire_item(key),
                               "SequenceNumber": f"{i + 1:021d}", "SizeBytes": 10 + i,
                               "StreamViewType": "NEW_AND_OLD_IMAGES"}
        if new is not None:
            dyn["NewImage"] = wire_item(new)
        if old is not None:
            dyn["OldImage"] = wire_item(old)
        rec = {"eventID": f"e{i}", "eventName": event, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
               "awsRegion": "us-east-1", "dynamodb": dyn, "notInTheModel": {"x": 1}}
        if i % 2:
            rec["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
        wired.append(rec)
    body = json.dumps({"Records": wired, "NextShardIterator": "it-2"}).encode()
    slow, fast = _both(canned, streams, "get_records", body, ShardIterator="it-1")
    assert fast == slow
    assert [r["dynamodb"]["Keys"] for r in fast["Records"]] == [k for _, k, *_ in records]
    assert all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], dt.datetime) for r in fast["Records"])


def test_escaped_binary_tag_is_still_decoded(canned: CannedEndpoint, tables: tuple[Any, Any]) -> None:
    """A B tag spelled with a JSON escape ("\\u0042") is found, so its value still becomes bytes."""
    body = b'{"Items":[{"pk":{"S":"a"},"blob":{"\\u0042":"AAE="},"set":{"B\\u0053":["AQ=="]}}],"Count":1}'
    slow, fast = _both(canned, tables, "scan", body, TableName="t")
    assert fast["Items"] == slow["Items"] == [{"pk": {"S": "a"}, "blob": {"B": b"\x00\x01"}, "set": {"BS": [b"\x01"]}}]


def test_fast_path_really_runs_and_keeps_malformed_values_for_validation(canned: CannedEndpoint,
                                                                         tables: tuple[Any, Any]) -> None:
    """botocore drops an unknown type tag and fails the whole page on bad base64; the fast path keeps both values,
    so validation rejects just that item (a dead letter) and the rest of the page goes on."""
    body = b'{"Items":[{"pk":{"S":"a"},"odd":{"X":"1"}}],"Count":1}'
    slow, fast = _both(canned, tables, "scan", body, TableName="t")
    assert slow["Items"][0]["odd"] == {} and fast["Items"][0]["odd"] == {"X": "1"}
    canned.body = b'{"Items":[{"pk":{"S":"b"},"bad":{"B":"not base64!"}},{"pk":{"S":"c"}}],"Count":2}'
    with pytest.raises(ValueError):  # binascii.Error, out of botocore's parser
        tables[0].scan(TableName="t")
    bad, good = tables[1].scan(TableName="t")["Items"]
    assert bad["bad"] == {"B": "not base64!"} and good == {"pk": {"S": "c"}}
    for av in (fast["Items"][0]["odd"], bad["bad"]):
        with pytest.raises(CodecError):
            codec.validate(av)


def test_error_answers_stay_botocores_client_errors(canned: CannedEndpoint, tables: tuple[Any, Any]) -> None:
    """A 400 answer still raises botocore's ClientError with DynamoDB's code on the fast client."""
    canned.body, canned.status = b'{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",' \
                                 b'"message":"Requested resource not found"}', 400
    try:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            tables[1].scan(TableName="t")
    finally:
        canned.status = 200
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_unreadable_body_is_left_to_botocore(canned: CannedEndpoint, tables: tuple[Any, Any]) -> None:
    """A body orjson cannot read (a lone surrogate escape) gets botocore's parse, exactly as without the hook."""
    body = b'{"Items":[{"pk":{"S":"\\ud800"}}],"Count":1}'
    slow, fast = _both(canned, tables, "scan", body, TableName="t")
    assert fast == slow and fast["Items"] == [{"pk": {"S": "\ud800"}}]


def test_uninstall_and_test_doubles(canned: CannedEndpoint) -> None:
    """uninstall gives answers back to botocore; a client without botocore's meta is left alone."""
    client = canned.client("dynamodb", True)
    canned.body = b'{"Items":[{"odd":{"X":"1"}}],"Count":1}'
    assert client.scan(TableName="t")["Items"] == [{"odd": {"X": "1"}}]
    raw_responses.uninstall(client)
    assert client.scan(TableName="t")["Items"] == [{"odd": {}}]
    assert raw_responses.install(object()) is False
    assert raw_responses.install(canned.client("sts", False)) is False  # neither Scan nor GetRecords


def test_binary_markers() -> None:
    """The shortcut only skips the walk when no spelling of a B or BS tag is in the body."""
    assert not raw_responses.may_hold_binary(b'{"Items":[{"Bx":{"S":"B\\u00e9"}}]}')
    for body in (b'{"B":"AA=="}', b'{"BS":[]}', b'{"\\u0042":"AA=="}', b'{"B\\u0053":[]}'):
        assert raw_responses.may_hold_binary(body)


def test_scanned_page_with_a_malformed_item_dead_letters_it(canned: CannedEndpoint, tmp_path: Path) -> None:
    """Through Source.scan and Cache.insert_scanned: the malformed item becomes a dead letter, the others rows."""
    page = {"Items": [{"business_id": {"S": "b1"}, "name": {"S": "One"}, "logo": {"B": "AAE="}},
                      {"business_id": {"S": "b2"}, "name": {"B": "A"}},
                      {"business_id": {"S": "b3"}, "rating": {"N": "4.50"}}], "Count": 3, "ScannedCount": 3}
    canned.body, canned.status = json.dumps(page).encode(), 200
    source = Source(AwsSettings(region="us-east-1"), "seo_", dynamodb_client=canned.client("dynamodb", False),
                    streams_client=canned.client("dynamodbstreams", False))
    spec = TABLES["businesses"]
    ((scanned),) = list(source.scan(spec))
    assert scanned[0]["logo"] == {"B": b"\x00\x01"} and scanned[2]["rating"] == {"N": "4.50"}
    cache = Cache.open(tmp_path / "cache.db")
    try:
        cache.create_shadow(spec)
        assert cache.insert_scanned(spec, scanned) == 2
        assert cache.dead_letter_count("businesses") == 1
    finally:
        cache.close()
