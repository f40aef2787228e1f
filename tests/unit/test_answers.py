"""Whole answers only (aws/answers.py and the shape checks of streams.py, tables.py, raw_responses.py).

Real botocore clients of the pinned version answered by canned bytes from a `before-send` handler,
so the check runs where it runs against DynamoDB: after botocore read the body, before its parser
and the orjson reader.
"""

from __future__ import annotations

import zlib
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from seo_sync.aws import answers, raw_responses
from seo_sync.aws.answers import AnswerCheck, ServerClock
from seo_sync.aws.session import ErrorContext
from seo_sync.aws.streams import StreamReader
from seo_sync.aws.tables import Source
from seo_sync.config import AwsSettings
from seo_sync.errors import IncompleteAnswer, SourceUnavailable
from seo_sync.schema import TABLES

DATE = "Sun, 06 Dec 2026 12:00:00 GMT"
DATE_EPOCH = 1796558400.0


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


class Canned:
    """Answers every request with `body` and the headers DynamoDB sends, minus those in `drop`."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.drop: set[str] = set()
        self.extra: dict[str, str] = {}

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        headers = {"Date": DATE, "Content-Type": "application/x-amz-json-1.0",
                   "x-amz-crc32": str(zlib.crc32(self.body)), "Content-Length": str(len(self.body)), **self.extra}
        headers = {k: v for k, v in headers.items() if k.lower() not in self.drop}
        return AWSResponse(request.url, 200, headers, _Raw(self.body))

    def answer(self, body: bytes, drop: tuple[str, ...] = (), **extra: str) -> None:
        self.body, self.drop, self.extra = body, {d.lower() for d in drop}, extra

    def client(self, service: str, fast: bool = True, clock: ServerClock | None = None) -> Any:
        c = boto3.session.Session().client(
            service, region_name="us-east-1", endpoint_url="http://canned.invalid",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}, account_id_endpoint_mode="disabled"))
        c.meta.events.register_first(f"before-send.{c.meta.service_model.service_id.hyphenize()}", self)
        answers.install(c, clock)
        if fast:
            raw_responses.install(c)
        return c


@pytest.fixture
def canned() -> Canned:
    """A fresh canned endpoint per test (the CRC32 memory is per client)."""
    return Canned()


@pytest.mark.parametrize("fast", [True, False])
def test_get_records_cut_in_the_headers_is_an_error_not_a_closed_shard(canned: Canned, fast: bool) -> None:
    """An empty body without Content-Length (headers cut) raises IncompleteAnswer on both parsers."""
    client = canned.client("dynamodbstreams", fast)
    canned.answer(b"", drop=("Content-Length", "x-amz-crc32"))
    with pytest.raises(IncompleteAnswer):
        client.get_records(ShardIterator="it")


def test_get_item_empty_object_is_absent_only_when_whole(canned: Canned) -> None:
    """`{}` with its Content-Length and CRC32 is an absent item; the same without them is an error."""
    client = canned.client("dynamodb")
    canned.answer(b"{}")
    assert "Item" not in client.get_item(TableName="t", Key={"k": {"S": "a"}})
    canned.answer(b"", drop=("Content-Length", "x-amz-crc32"))
    with pytest.raises(IncompleteAnswer, match="empty"):
        client.get_item(TableName="t", Key={"k": {"S": "a"}})


def test_body_shorter_than_its_content_length_is_an_error(canned: Canned) -> None:
    """A Scan body cut short of its Content-Length raises, never yields the items it still has."""
    client = canned.client("dynamodb")
    whole = b'{"Items":[{"k":{"S":"a"}},{"k":{"S":"b"}}],"Count":2,"ScannedCount":2}'
    canned.answer(whole[:30], **{"Content-Length": str(len(whole))})
    with pytest.raises(IncompleteAnswer, match="bytes of the"):
        client.scan(TableName="t")


def test_crc32_missing_after_the_endpoint_sent_one_is_an_error(canned: Canned) -> None:
    """Once an endpoint sent x-amz-crc32, an answer without it (headers cut) is refused; a wrong one too."""
    client = canned.client("dynamodb")
    canned.answer(b'{"Item":{"k":{"S":"a"}}}')
    assert client.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]
    canned.answer(b"{}", drop=("x-amz-crc32",))
    with pytest.raises(IncompleteAnswer, match="crc32"):
        client.get_item(TableName="t", Key={"k": {"S": "a"}})
    canned.answer(b"{}", **{"x-amz-crc32": "12345"})
    with pytest.raises(IncompleteAnswer, match="CRC32"):
        client.get_item(TableName="t", Key={"k": {"S": "a"}})


@pytest.mark.parametrize(("service", "op", "kwargs", "member"), [
    ("dynamodbstreams", "get_records", {"ShardIterator": "it"}, "Records"),
    ("dynamodb", "scan", {"TableName": "t"}, "Count"),
    ("dynamodbstreams", "get_shard_iterator", {"StreamArn": "a" * 40, "ShardId": "s" * 28,
                                               "ShardIteratorType": "LATEST"}, "ShardIterator"),
])
def test_whole_body_without_the_operations_member_is_an_error(canned: Canned, service: str, op: str,
                                                              kwargs: dict[str, Any], member: str) -> None:
    """A whole JSON object that lacks what the operation always answers with is not its answer."""
    client = canned.client(service)
    canned.answer(b'{"NextShardIterator":"x"}')
    with pytest.raises(IncompleteAnswer, match=member):
        getattr(client, op)(**kwargs)


def test_a_non_object_body_is_an_error_on_the_fast_path() -> None:
    """The orjson reader alone (no whole-answer check) refuses an empty body or a JSON array."""
    canned = Canned()
    client = boto3.session.Session().client(
        "dynamodbstreams", region_name="us-east-1", endpoint_url="http://canned.invalid",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, account_id_endpoint_mode="disabled"))
    client.meta.events.register_first("before-send.dynamodb-streams", canned)
    raw_responses.install(client)
    for body in (b"", b"[]"):
        canned.answer(body)
        with pytest.raises(IncompleteAnswer):
            client.get_records(ShardIterator="it")


class _Doubles:
    """Clients shaped like boto3's that answer `{}` (what botocore makes of an empty body)."""

    meta = type("Meta", (), {"endpoint_url": "http://x", "region_name": "us-east-1"})()

    def __getattr__(self, name: str) -> Any:
        return lambda **_: {}


def test_botocore_side_shape_checks_refuse_empty_answers() -> None:
    """Without the hook (a test double, or the hook bypassed), `{}` is still never "no records" or "empty"."""
    reader = StreamReader(_Doubles(), ErrorContext("http://x", "us-east-1"))  # type: ignore[arg-type]
    with pytest.raises(IncompleteAnswer):
        reader.get_records("it")
    with pytest.raises(IncompleteAnswer):
        reader.shard_iterator("arn", "shard", "LATEST")
    with pytest.raises(IncompleteAnswer):
        reader.describe_stream("arn")
    source = Source(AwsSettings(region="us-east-1"), "seo_", dynamodb_client=_Doubles(), streams_client=_Doubles())
    with pytest.raises(IncompleteAnswer):
        next(source.scan(TABLES["businesses"]))
    with pytest.raises(IncompleteAnswer):
        source.describe_table(TABLES["businesses"])
    assert issubclass(IncompleteAnswer, SourceUnavailable)  # retried with backoff by every caller


def test_server_clock_reads_the_date_of_whole_answers(canned: Canned) -> None:
    """Each whole answer's Date moves the server clock estimate; a refused one does not."""
    clock = ServerClock(wall=lambda: DATE_EPOCH + 3600.25)  # this host is an hour and a bit ahead
    client = canned.client("dynamodb", clock=clock)
    assert clock.offset() is None and clock.now() == DATE_EPOCH + 3600.25
    canned.answer(b"{}")
    client.get_item(TableName="t", Key={"k": {"S": "a"}})
    assert clock.offset() == -3599.75  # the middle of the second the Date leaves open
    assert clock.now() == DATE_EPOCH + 0.5


def test_server_clock_narrows_the_second_a_date_leaves_open() -> None:
    """Dates are whole seconds rounded down: each answer bounds the offset within a second, and the
    estimate is the middle of what the window's answers leave of it."""
    now = [1000.0]
    clock = ServerClock(wall=lambda: now[0], window=60)
    clock.observe(1004.0, at=1000.9)  # offset in [3.1, 4.1)
    assert clock.offset() == pytest.approx(3.6)
    clock.observe(1005.0, at=1001.1)  # offset in [3.9, 4.9): together [3.9, 4.1)
    assert clock.offset() == pytest.approx(4.0)
    now[0] = 1100.0
    clock.observe(1103.0, at=1100.0)  # the older answers left the window
    assert clock.offset() == pytest.approx(3.5)
    clock.observe(1200.0, at=1100.5)  # the host clock was stepped: the newest answer alone
    assert clock.offset() == pytest.approx(99.5 + 0.5)


def test_problem_names_what_is_missing() -> None:
    """The reasons are readable: what an operator sees in the retry's log line."""
    check = AnswerCheck()
    whole = b'{"Records":[]}'
    ok = {"body": whole, "headers": {"content-length": str(len(whole))}}
    assert check.problem("GetRecords", ok) is None
    assert check.problem("GetRecords", {"body": whole, "headers": {}}) == \
        "it has no Content-Length (its headers were cut)"
    assert check.problem("GetRecords", {"body": whole[:-1], "headers": {"content-length": "13"}}) == \
        "its body is not a JSON object"
    chunked = {"body": whole, "headers": {"transfer-encoding": "chunked"}}
    assert check.problem("GetRecords", chunked) is None  # http.client refuses a cut chunked body itself


def test_source_asks_again_after_a_cut_answer_within_its_attempts(canned: Canned) -> None:
    """One cut answer costs the Source one more request, not a failed call; cuts on every attempt are
    IncompleteAnswer naming the call."""
    client = canned.client("dynamodb")
    source = Source(AwsSettings(region="us-east-1", max_attempts=3), "seo_", dynamodb_client=client,
                    streams_client=canned.client("dynamodbstreams"))
    whole = b'{"Item":{"business_id":{"S":"a"}}}'
    bodies = [b"", whole]
    real = canned.__call__

    def send(request: Any, **kw: Any) -> AWSResponse:
        if bodies:
            canned.answer(bodies[0], drop=() if bodies.pop(0) else ("Content-Length", "x-amz-crc32"))
        return real(request, **kw)

    client.meta.events.unregister("before-send.dynamodb", canned)
    client.meta.events.register_first("before-send.dynamodb", send)
    assert source.get_item(TABLES["businesses"], ("a",)) == {"business_id": {"S": "a"}}
    assert bodies == []
    canned.answer(b"", drop=("Content-Length", "x-amz-crc32"))
    with pytest.raises(IncompleteAnswer, match="GetItem on seo_businesses"):
        source.get_item(TABLES["businesses"], ("a",))
