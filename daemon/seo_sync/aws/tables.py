"""DynamoDB tables through boto3: describe, create, scan, query, and item reads and writes.

`Source` is the AWS side of one table prefix: it holds the DynamoDB client and the stream reader
(`streams.py`). Every failure is translated (`session.py`) into the exception tree of `errors.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import botocore.exceptions as bexc

from seo_sync.aws import answers, raw_check
from seo_sync.aws.answers import ServerClock, http_date
from seo_sync.aws.session import CAUGHT, ErrorContext, client_config, make_session
from seo_sync.aws.streams import StreamReader, StreamsApi, member
from seo_sync.backoff import backoff_delay
from seo_sync.codec import Item
from seo_sync.config import AwsSettings
from seo_sync.errors import (
    BadInput,
    IncompleteAnswer,
    SourceError,
    SourceThrottled,
    SourceUnavailable,
    VersionMismatch,
)
from seo_sync.feed import ChangeFeed, TableInfo
from seo_sync.logs import mask_url
from seo_sync.schema import TableSpec

MIN_SCAN_PAGE = 10  # items: the floor of a byte-sized Scan page, so huge items still make progress
FIRST_SCAN_PAGE = 100  # items: the first byte-sized page, before the item size is known
CUT_RETRY_BASE = 0.05  # seconds before asking again after a cut-off answer (doubling, jittered)


def _content_length(resp: dict[str, Any]) -> int:
    """Bytes of the HTTP response body (0 when the server did not say)."""
    headers = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return int(headers.get("content-length", 0))
    except (TypeError, ValueError):
        return 0


def answer_date(resp: Any) -> float | None:
    """The Date header of an answer as epoch seconds (DynamoDB's clock); None when absent."""
    headers = (resp.get("ResponseMetadata") or {}).get("HTTPHeaders") or {} if isinstance(resp, dict) else {}
    return http_date(headers.get("date"))


class DynamoDBApi(Protocol):
    """The calls seo-sync makes on boto3's `dynamodb` client, in its keyword form."""

    @property
    def meta(self) -> Any:
        """The client's endpoint_url and region_name (boto3's also carries the event hooks answers.py uses)."""

    def describe_table(self, *, TableName: str) -> Any:
        """DescribeTable."""

    def create_table(self, *, TableName: str, KeySchema: list[dict[str, str]],
                     AttributeDefinitions: list[dict[str, str]], BillingMode: str,
                     StreamSpecification: dict[str, Any]) -> Any:
        """CreateTable."""

    def delete_table(self, *, TableName: str) -> Any:
        """DeleteTable."""

    def scan(self, *, TableName: str, ConsistentRead: bool = ..., Segment: int = ..., TotalSegments: int = ...,
             Limit: int = ..., ExclusiveStartKey: dict[str, Any] = ...) -> Any:
        """Scan: one page of one segment."""

    def query(self, *, TableName: str, KeyConditionExpression: str, ConsistentRead: bool = ...,
              ExpressionAttributeNames: dict[str, str] = ..., ExpressionAttributeValues: dict[str, Any] = ...,
              ExclusiveStartKey: dict[str, Any] = ...) -> Any:
        """Query: one page."""

    def get_item(self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = ...) -> Any:
        """GetItem."""

    def put_item(self, *, TableName: str, Item: dict[str, Any], ConditionExpression: str = ...,
                 ExpressionAttributeNames: dict[str, str] = ..., ExpressionAttributeValues: dict[str, Any] = ...,
                 ReturnValuesOnConditionCheckFailure: str = ...) -> Any:
        """PutItem, conditional when a ConditionExpression is given."""

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> Any:
        """BatchWriteItem: up to 25 puts; the unprocessed ones come back."""

    def describe_kinesis_streaming_destination(self, *, TableName: str) -> Any:
        """DescribeKinesisStreamingDestination."""

    def enable_kinesis_streaming_destination(self, *, TableName: str, StreamArn: str,
                                             EnableKinesisStreamingConfiguration: dict[str, Any] = ...) -> Any:
        """EnableKinesisStreamingDestination."""


@dataclass(frozen=True)
class ItemRead:
    """One consistent read of one key: the item (None when absent) and when DynamoDB answered, by its clock."""

    item: Item | None
    at: float
    confirmed: bool = False  # "absent" was read twice (the cache held the key live)


class Source:
    """DynamoDB for one table prefix: tables, scans, item reads and writes, and the stream reader."""

    def __init__(self, aws: AwsSettings, prefix: str, *, dynamodb_client: DynamoDBApi | None = None,
                 streams_client: StreamsApi | None = None, wall: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self.attempts = aws.max_attempts
        cfg = client_config(aws)
        kwargs: dict[str, Any] = {"config": cfg}
        if aws.endpoint_url:
            kwargs["endpoint_url"] = aws.endpoint_url
        try:
            if dynamodb_client is None or streams_client is None:
                session = make_session(aws)  # raises no NoRegionError: only a client needs the region
                dynamodb_client = dynamodb_client or session.client("dynamodb", **kwargs)
                streams_client = streams_client or session.client("dynamodbstreams", **kwargs)
            self.ddb: DynamoDBApi = dynamodb_client
            raw_streams = streams_client
        except bexc.NoRegionError:
            raise SourceUnavailable("no AWS region configured",
                                    hint="set AWS_REGION, or aws.region in the config, or --env-file") from None
        self.ctx = ErrorContext(mask_url(self.ddb.meta.endpoint_url) or "?", self.ddb.meta.region_name or "?")
        # DynamoDB's clock, read from every checked answer's Date: reads are stamped by it, not this host's.
        self.server_clock = ServerClock(wall)  # `wall`: this host's clock (a test moves it)
        answers.install(self.ddb, self.server_clock)  # a cut-off answer is an error, never "absent" or "empty"
        raw_check.install_checked(self.ddb)  # Scan answers read by orjson, once checked against botocore
        self.streams: ChangeFeed = StreamReader(raw_streams, self.ctx, self.server_clock)

    @property
    def endpoint(self) -> str:
        """The DynamoDB endpoint URL in use."""
        return self.ctx.endpoint

    @property
    def region(self) -> str:
        """The region in use."""
        return self.ctx.region

    def _call(self, what: str, table: str | None, fn: Any, **kwargs: Any) -> Any:
        """One call, errors translated; an answer that arrived cut off is asked again, within the
        configured attempts, as botocore asks again after a dropped connection (a full sync's Scan
        must not start over for one cut page)."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(**kwargs)
            except CAUGHT as e:
                raise self.ctx.translate(e, what, table) from None
            except IncompleteAnswer as e:
                if attempt >= self.attempts:
                    raise IncompleteAnswer(f"{what} on {table or 'DynamoDB'}: {e.message}", hint=e.hint) from None
                time.sleep(backoff_delay(attempt, base=CUT_RETRY_BASE, cap=1.0))
        raise AssertionError("unreachable")  # the loop returns or raises

    # -- tables ---------------------------------------------------------------------------------

    def describe_table(self, spec: TableSpec) -> TableInfo:
        """DescribeTable for one of our tables."""
        name = spec.dynamo_name(self.prefix)
        t = member(self._call("DescribeTable", name, self.ddb.describe_table, TableName=name), "Table", "DescribeTable")
        ss = t.get("StreamSpecification") or {}
        return TableInfo(name, t.get("TableStatus", "?"), t.get("LatestStreamArn"),
                         bool(ss.get("StreamEnabled")), ss.get("StreamViewType"), int(t.get("ItemCount", 0)))

    def server_time(self, spec: TableSpec) -> float | None:
        """DynamoDB's own clock, epoch seconds rounded down (a DescribeTable answer's Date header); None if absent."""
        name = spec.dynamo_name(self.prefix)
        return answer_date(self._call("DescribeTable", name, self.ddb.describe_table, TableName=name))

    def create_table(self, spec: TableSpec, wait: float = 60.0) -> bool:
        """Create one table (PAY_PER_REQUEST, NEW_AND_OLD_IMAGES stream); False if it existed."""
        name = spec.dynamo_name(self.prefix)
        keys = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": spec.hash_key, "AttributeType": "S"}]
        if spec.range_key:
            keys.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": spec.range_key, "AttributeType": "S"})
        try:
            self.ddb.create_table(
                TableName=name, KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            created = True
        except bexc.ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise self.ctx.translate(e, "CreateTable", name) from None
            created = False
        except bexc.BotoCoreError as e:
            raise self.ctx.translate(e, "CreateTable", name) from None
        deadline = time.monotonic() + wait
        while self.describe_table(spec).status != "ACTIVE":
            if time.monotonic() > deadline:
                raise SourceError(f"table {name} did not become ACTIVE within {wait:.0f}s")
            time.sleep(0.5)
        return created

    def delete_table(self, spec: TableSpec) -> None:
        """Delete one table (tests and demo only; never called by the daemon)."""
        name = spec.dynamo_name(self.prefix)
        self._call("DeleteTable", name, self.ddb.delete_table, TableName=name)

    def scan(self, spec: TableSpec, segment: int = 0, total_segments: int = 1,
             page_limit: int | None = None, consistent: bool = True,
             page_bytes: int | None = None) -> Iterator[list[Item]]:
        """Pages of one Scan segment.

        With `page_bytes`, each request's `Limit` is re-estimated from the previous response's
        size (Content-Length / items) so a page holds about that many bytes of JSON, never more
        than `page_limit` items: what one page costs in memory then no longer depends on how big
        the items of this table are (DynamoDB's own cap is 1 MB a page).
        """
        name = spec.dynamo_name(self.prefix)
        kwargs: dict[str, Any] = {"TableName": name, "ConsistentRead": consistent}
        if total_segments > 1:
            kwargs.update(Segment=segment, TotalSegments=total_segments)
        if page_limit:
            kwargs["Limit"] = page_limit
        if page_bytes:  # the item size is unknown until the first page: start small
            kwargs["Limit"] = min(page_limit or FIRST_SCAN_PAGE, FIRST_SCAN_PAGE)
        while True:
            resp = self._call("Scan", name, self.ddb.scan, **kwargs)
            items = member(resp, "Items", "Scan")  # a page without Items is cut, never an empty one
            yield items
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last
            if page_bytes and items:
                size = _content_length(resp)
                if size:
                    limit = max(MIN_SCAN_PAGE, page_bytes * len(items) // size)
                    kwargs["Limit"] = min(limit, page_limit) if page_limit else limit

    def query_business(self, spec: TableSpec, business_id: str) -> list[Item]:
        """Every item of one business in one table (Query on the hash key)."""
        name = spec.dynamo_name(self.prefix)
        kwargs: dict[str, Any] = {
            "TableName": name, "ConsistentRead": True,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": spec.hash_key},
            "ExpressionAttributeValues": {":v": {"S": business_id}},
        }
        items: list[Item] = []
        while True:
            resp = self._call("Query", name, self.ddb.query, **kwargs)
            items.extend(member(resp, "Items", "Query"))
            if not resp.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # -- items ----------------------------------------------------------------------------------

    def key_av(self, spec: TableSpec, key: tuple[str, ...]) -> Item:
        """The DynamoDB key of `key` (a tuple in key_names order)."""
        if len(key) != len(spec.key_names):
            raise BadInput(f"{spec.name} needs key {', '.join(spec.key_names)}")
        return {n: {"S": v} for n, v in zip(spec.key_names, key, strict=True)}

    def get_item(self, spec: TableSpec, key: tuple[str, ...], consistent: bool = True) -> Item | None:
        """One item by key, strongly consistent by default; None when absent."""
        name = spec.dynamo_name(self.prefix)
        resp = self._call("GetItem", name, self.ddb.get_item, TableName=name,
                          Key=self.key_av(spec, key), ConsistentRead=consistent)
        return resp.get("Item")

    def _read(self, spec: TableSpec, key: tuple[str, ...]) -> ItemRead:
        name = spec.dynamo_name(self.prefix)
        resp = self._call("GetItem", name, self.ddb.get_item, TableName=name,
                          Key=self.key_av(spec, key), ConsistentRead=True)
        at = answer_date(resp)
        return ItemRead(resp.get("Item"), self.server_clock.now() if at is None else at)

    def read_item(self, spec: TableSpec, key: tuple[str, ...], *, live: bool) -> ItemRead:
        """A consistent read to apply as the truth, stamped with DynamoDB's clock (its answer's Date).

        `live`: the cache holds the key as a live row. An answer of "absent" for such a key is
        read again before it is believed, so that one answer that is wrong in a way no check of its
        shape can see never removes a row; the second answer is the one returned either way.
        """
        first = self._read(spec, key)
        if first.item is not None or not live:
            return first
        second = self._read(spec, key)
        return ItemRead(second.item, second.at, confirmed=second.item is None)

    def put_item(self, spec: TableSpec, item: Item, expected_version: int | bool | None = False) -> None:
        """PutItem; with `expected_version` (an int, or None for "must not exist") it is conditional.

        `expected_version=0` also matches an existing item that has no `_version` attribute.

        A failed condition raises VersionMismatch carrying the current item (ALL_OLD).
        """
        name = spec.dynamo_name(self.prefix)
        kwargs: dict[str, Any] = {"TableName": name, "Item": item}
        if expected_version is None:
            kwargs["ConditionExpression"] = "attribute_not_exists(#h)"
            kwargs["ExpressionAttributeNames"] = {"#h": spec.hash_key}
        elif expected_version is not False and int(expected_version) == 0:
            # 0 also matches an existing item written without `_version` (an unversioned writer).
            kwargs["ConditionExpression"] = "(attribute_exists(#h) AND attribute_not_exists(#v)) OR #v = :v"
            kwargs["ExpressionAttributeNames"] = {"#h": spec.hash_key, "#v": "_version"}
            kwargs["ExpressionAttributeValues"] = {":v": {"N": "0"}}
        elif expected_version is not False:
            kwargs["ConditionExpression"] = "#v = :v"
            kwargs["ExpressionAttributeNames"] = {"#v": "_version"}
            kwargs["ExpressionAttributeValues"] = {":v": {"N": str(int(expected_version))}}
        if "ConditionExpression" in kwargs:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self.ddb.put_item(**kwargs)
        except bexc.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                current: dict[str, Any] | None = e.response.get("Item")
                raise VersionMismatch(
                    f"{name}: version mismatch (expected {expected_version}, "
                    f"found {(current or {}).get('_version', {}).get('N', 'none')})",
                    current=current, retried=bool(e.response.get("ResponseMetadata", {}).get("RetryAttempts")),
                ) from None
            raise self.ctx.translate(e, "PutItem", name) from None
        except bexc.BotoCoreError as e:
            raise self.ctx.translate(e, "PutItem", name) from None

    def put_item_unless_newer(self, spec: TableSpec, item: Item) -> bool:
        """PutItem unless DynamoDB holds a newer `_version` of it; False when skipped for that reason.

        Without a `_version` of our own, only an absent item or one without `_version` is overwritten.
        """
        name = spec.dynamo_name(self.prefix)
        ours = item.get("_version", {}).get("N")
        cond = "attribute_not_exists(#h) OR attribute_not_exists(#v)"
        kwargs: dict[str, Any] = {"TableName": name, "Item": item,
                                  "ExpressionAttributeNames": {"#h": spec.hash_key, "#v": "_version"}}
        if ours is not None:
            cond += " OR #v <= :v"
            kwargs["ExpressionAttributeValues"] = {":v": {"N": ours}}
        try:
            self.ddb.put_item(ConditionExpression=cond, **kwargs)
            return True
        except bexc.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise self.ctx.translate(e, "PutItem", name) from None
        except bexc.BotoCoreError as e:
            raise self.ctx.translate(e, "PutItem", name) from None

    def batch_write(self, spec: TableSpec, items: list[Item], max_rounds: int = 8) -> int:
        """BatchWriteItem in chunks of 25, retrying unprocessed items with backoff; returns the count."""
        name = spec.dynamo_name(self.prefix)
        written = 0
        for i in range(0, len(items), 25):
            pending = [{"PutRequest": {"Item": it}} for it in items[i:i + 25]]
            for attempt in range(max_rounds):
                resp = self._call("BatchWriteItem", name, self.ddb.batch_write_item,
                                  RequestItems={name: pending})
                left = resp.get("UnprocessedItems", {}).get(name, [])
                written += len(pending) - len(left)
                if not left:
                    break
                pending = left
                time.sleep(backoff_delay(attempt + 1, base=0.05, cap=2.0))
            else:
                raise SourceThrottled(f"BatchWriteItem on {name}: {len(pending)} items still unprocessed")
        return written
