"""Operator actions on Kinesis Data Streams for DynamoDB: set a fleet's streams up, and manage consumers.

These need write permissions the daemon never has (config/iam-kinesis-operator.json): creating a
stream, turning on a table's Kinesis streaming destination, deregistering a consumer. The daemon
itself only reads, apart from registering its own consumer (config/iam-daemon-kinesis.json).

`enable` creates each configured stream that does not exist (on-demand capacity, so a busy table
never needs a reshard by hand) and points each table's streaming destination at its stream with
microsecond creation times, which the order-independent apply compares. `consumers` lists the
enhanced fan-out consumers of each stream; `deregister` removes a decommissioned host's.

The embedded local AWS (moto) has Kinesis streams but no streaming destinations: it answers both
destination calls with a bare HTTP 500. `enable` then creates the streams, leaves the destinations
alone, and says so in its report (`destinations_unavailable`) instead of failing as if AWS were
down: locally, the demo's relay puts the tables' changes into the stream in DynamoDB's place.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from seo_sync.aws.kinesis_source import KinesisSource
from seo_sync.aws.session import CAUGHT
from seo_sync.errors import SourceError
from seo_sync.schema import TABLES

STREAM_ACTIVE_TIMEOUT = 120.0


def _code(e: Exception) -> str:
    return str((getattr(e, "response", None) or {}).get("Error", {}).get("Code", ""))


def stream_arns(source: KinesisSource) -> list[str]:
    """Every configured stream, once."""
    seen: list[str] = []
    for name in TABLES:
        arn = source.kinesis_settings.arn_for(name)
        if arn and arn not in seen:
            seen.append(arn)
    return seen


def _ensure_stream(source: KinesisSource, arn: str) -> str:
    """Create the stream named by `arn` unless it exists; wait until ACTIVE; 'created' or 'existed'."""
    client: Any = source.kinesis_client
    name = arn.rsplit("/", 1)[1]
    outcome = "existed"
    try:
        client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        outcome = "created"
    except CAUGHT as e:
        if _code(e) != "ResourceInUseException":
            raise source.ctx.translate(e, "CreateStream") from None
    deadline = time.monotonic() + STREAM_ACTIVE_TIMEOUT
    while True:
        try:
            status = client.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["StreamStatus"]
        except CAUGHT as e:
            raise source.ctx.translate(e, "DescribeStreamSummary") from None
        if status == "ACTIVE":
            return outcome
        if time.monotonic() > deadline:
            raise SourceError(f"stream {arn} is still {status}", hint="wait, then run the command again")
        time.sleep(2.0)


def _not_served(source: KinesisSource, e: Exception) -> bool:
    """True when an endpoint other than AWS's answered a call with a bare HTTP 500 or 501 (no AWS
    error code, only the status): a local server without that call, as moto is for the destinations."""
    resp = getattr(e, "response", None) or {}
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(resp.get("Error", {}).get("Code", ""))
    host = urlparse(source.endpoint).hostname or ""
    aws = host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
    return not aws and status in (500, 501) and code in ("", str(status))


def _destination_call(source: KinesisSource, what: str, name: str, fn: Any, **kwargs: Any) -> Any:
    """One streaming-destination call; None when the endpoint does not serve it (see `_not_served`)."""
    try:
        return fn(**kwargs)
    except CAUGHT as e:
        if _not_served(source, e):
            return None
        raise source.ctx.translate(e, what, name) from None


def _enable_destination(source: KinesisSource, table: str, arn: str) -> tuple[str, str | None]:
    """Point the table's Kinesis streaming destination at `arn` with µs creation times: what was
    done, and the call the endpoint does not serve (None when it served both)."""
    name = TABLES[table].dynamo_name(source.prefix)
    describe = "DescribeKinesisStreamingDestination"
    dests = _destination_call(source, describe, name, source.ddb.describe_kinesis_streaming_destination,
                              TableName=name)
    if dests is None:
        return "not enabled", describe
    for d in dests.get("KinesisDataStreamDestinations", []):
        if d.get("StreamArn") == arn and d.get("DestinationStatus") in ("ACTIVE", "ENABLING"):
            return str(d["DestinationStatus"]).lower(), None
    enable_call = "EnableKinesisStreamingDestination"
    micro = {"ApproximateCreationDateTimePrecision": "MICROSECOND"}
    done = _destination_call(source, enable_call, name, source.ddb.enable_kinesis_streaming_destination,
                             TableName=name, StreamArn=arn, EnableKinesisStreamingConfiguration=micro)
    return ("enabling", None) if done is not None else ("not enabled", enable_call)


def enable(source: KinesisSource) -> dict[str, Any]:
    """Create the configured streams and turn on every table's streaming destination; a report. Where
    the endpoint serves no destinations (the embedded AWS), the streams are still created and the
    report names the call it refused under `destinations_unavailable`."""
    streams = {arn: _ensure_stream(source, arn) for arn in stream_arns(source)}
    tables = {}
    refused: str | None = None
    for table in TABLES:
        arn = source.kinesis_settings.arn_for(table)
        assert arn is not None  # settings refuse kind = "kinesis" without an ARN for every table
        if refused is None:
            outcome, refused = _enable_destination(source, table, arn)
        else:
            outcome = "not enabled"  # the endpoint has no destinations: asking for each table changes nothing
        tables[table] = {"stream": arn, "destination": outcome}
    report: dict[str, Any] = {"streams": streams, "tables": tables}
    if refused is not None:
        report["destinations_unavailable"] = {
            "endpoint": source.endpoint, "call": refused,
            "why": "the endpoint answers it with a bare HTTP 500: it has Kinesis streams but cannot stream a "
                   "table's changes into one (the embedded local AWS, moto, cannot)"}
    return report


def consumers(source: KinesisSource) -> dict[str, list[dict[str, Any]]]:
    """The enhanced fan-out consumers of every configured stream (all pages)."""
    client: Any = source.kinesis_client
    out: dict[str, list[dict[str, Any]]] = {}
    for arn in stream_arns(source):
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamARN": arn}
        while True:
            try:
                resp = client.list_stream_consumers(**kwargs)
            except CAUGHT as e:
                raise source.ctx.translate(e, "ListStreamConsumers") from None
            found += [{"name": c["ConsumerName"], "status": c.get("ConsumerStatus"), "arn": c.get("ConsumerARN"),
                       "created": str(c.get("ConsumerCreationTimestamp", ""))} for c in resp.get("Consumers", [])]
            if not resp.get("NextToken"):
                break
            kwargs["NextToken"] = resp["NextToken"]
        out[arn] = found
    return out


def deregister(source: KinesisSource, name: str) -> list[str]:
    """Deregister consumer `name` from every configured stream that has it; the streams it left."""
    client: Any = source.kinesis_client
    left = []
    for arn, found in consumers(source).items():
        for c in (c for c in found if c["name"] == name):
            try:  # by the consumer's ARN alone, which names one consumer of one stream
                client.deregister_stream_consumer(ConsumerARN=c["arn"])
            except CAUGHT as e:
                raise source.ctx.translate(e, "DeregisterStreamConsumer") from None
            left.append(arn)
    return left
