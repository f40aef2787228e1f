"""The AWS side of a daemon that reads Kinesis Data Streams for DynamoDB instead of DynamoDB Streams.

`KinesisSource` is the DynamoDB `Source` (tables, scans, item reads and writes are the same) whose
change feed is a `KinesisFeed` and whose tables report their Kinesis stream as the stream to read.
So everything the engine does with a table's stream ARN (checkpoints name it, a different ARN is a
gap answered by that table's full sync) works unchanged: the ARN is the table's Kinesis stream,
checked against the table's streaming destination (it must be ACTIVE and point at that stream).

`make_source` chooses between the two by `[source] kind`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions as bexc

from seo_sync.aws import answers
from seo_sync.aws.kinesis import KinesisApi, KinesisFeed
from seo_sync.aws.kinesis_efo import EfoApi, EfoFeed, ensure_consumer
from seo_sync.aws.session import client_config, make_session
from seo_sync.aws.tables import DynamoDBApi, Source
from seo_sync.config import Settings
from seo_sync.errors import SourceError, SourceUnavailable
from seo_sync.feed import TableInfo
from seo_sync.schema import TableSpec

if TYPE_CHECKING:
    # Every change feed, declared against the protocol the engine reads it through: mypy checks each
    # one here, whichever a `Source` holds at run time.
    from seo_sync.aws.streams import StreamReader
    from seo_sync.feed import ChangeFeed

    _streams: ChangeFeed = cast(StreamReader, None)
    _kinesis: ChangeFeed = cast(KinesisFeed, None)
    _efo: ChangeFeed = cast(EfoFeed, None)


class KinesisSource(Source):
    """DynamoDB for one table prefix, with each table's changes read from its Kinesis stream."""

    def __init__(self, settings: Settings, *, dynamodb_client: DynamoDBApi | None = None, streams_client: Any = None,
                 kinesis_client: KinesisApi | None = None) -> None:
        super().__init__(settings.aws, settings.table_prefix, dynamodb_client=dynamodb_client,
                         streams_client=streams_client)
        self.kinesis_settings = settings.kinesis
        if kinesis_client is None:
            kwargs: dict[str, Any] = {"config": client_config(settings.aws)}
            if settings.aws.endpoint_url:
                kwargs["endpoint_url"] = settings.aws.endpoint_url
            try:
                kinesis_client = make_session(settings.aws).client("kinesis", **kwargs)
            except bexc.NoRegionError:
                raise SourceUnavailable("no AWS region configured",
                                        hint="set AWS_REGION, or aws.region in the config") from None
        answers.install(kinesis_client, self.server_clock)  # a cut-off answer is an error, never an empty page
        self.kinesis_client = kinesis_client
        interval = 1.0 / settings.kinesis.polls_per_second
        if settings.kinesis.mode == "efo":
            name = settings.kinesis.consumer()
            # boto3's kinesis client answers both APIs; a client passed in for this mode must be an EfoApi.
            efo_client = cast(EfoApi, kinesis_client)
            self.streams = EfoFeed(efo_client, self.ctx, settings.table_prefix,
                                   lambda arn: ensure_consumer(efo_client, self.ctx, arn, name), min_interval=interval,
                                   max_lateness=settings.kinesis.max_lateness)
        else:
            self.streams = KinesisFeed(kinesis_client, self.ctx, settings.table_prefix,
                                       min_interval=interval, max_lateness=settings.kinesis.max_lateness)

    def describe_table(self, spec: TableSpec) -> TableInfo:
        """DescribeTable, with the table's Kinesis stream as the stream to read (checked when configured)."""
        info = super().describe_table(spec)
        arn = self.kinesis_settings.arn_for(spec.name)
        if arn is None:
            raise SourceError(f"{info.name}: no Kinesis stream configured",
                              hint="set kinesis.stream_arn, or kinesis.stream_arns for this table")
        if self.kinesis_settings.check_destination:
            self._check_destination(info.name, arn)
        return TableInfo(info.name, info.status, arn, True, "NEW_AND_OLD_IMAGES", info.item_count)

    def _check_destination(self, name: str, arn: str) -> None:
        """SourceError unless the table streams its changes to `arn` now (an inactive destination
        delivers nothing, so the table must not be reported in step)."""
        resp = self._call("DescribeKinesisStreamingDestination", name,
                          self.ddb.describe_kinesis_streaming_destination, TableName=name)
        dests = resp.get("KinesisDataStreamDestinations", [])
        for d in dests:
            if d.get("StreamArn") == arn:
                status = d.get("DestinationStatus")
                if status == "ACTIVE":
                    return
                raise SourceError(f"{name}: its Kinesis streaming destination {arn} is {status}",
                                  hint="run `seo-sync kinesis enable`, or see DestinationStatusDescription "
                                       f"({str(d.get('DestinationStatusDescription', ''))[:120]})")
        elsewhere = ", ".join(str(d.get("StreamArn")) for d in dests) or "nowhere"
        raise SourceError(f"{name}: streams its changes to {elsewhere}, not to {arn}",
                          hint="run `seo-sync kinesis enable`, or fix kinesis.stream_arn(s) in the config")


def make_source(settings: Settings) -> Source:
    """The AWS side of the daemon for `[source] kind`: DynamoDB Streams, or Kinesis Data Streams."""
    if settings.source.kind == "kinesis":
        return KinesisSource(settings)
    return Source(settings.aws, settings.table_prefix)
