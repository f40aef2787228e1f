"""`seo-sync kinesis consumers` against moto's Kinesis: list a fleet's consumers, deregister a retired host's."""

from __future__ import annotations

import json

import boto3

from seo_sync.cli.main import run


def test_consumers_are_listed_and_a_retired_hosts_is_deregistered(dynamo_endpoint, tmp_path, monkeypatch, capsys):
    """The listing names every host's consumer; --deregister removes one and the next listing lacks it."""
    client = boto3.client("kinesis", endpoint_url=dynamo_endpoint, region_name="us-east-1")
    client.create_stream(StreamName="seo-changes", ShardCount=1)
    arn = client.describe_stream_summary(StreamName="seo-changes")["StreamDescriptionSummary"]["StreamARN"]
    for host in ("gen-01", "gen-02", "gen-03"):
        client.register_stream_consumer(StreamARN=arn, ConsumerName=host)
    for k, v in {"SEO_SYNC_SOURCE__KIND": "kinesis", "SEO_SYNC_KINESIS__STREAM_ARN": arn,
                 "SEO_SYNC_AWS__ENDPOINT_URL": dynamo_endpoint, "SEO_SYNC_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)

    def consumers(*args: str) -> tuple[int, dict]:
        capsys.readouterr()
        code = run(["--json", "kinesis", "consumers", *args])
        return code, json.loads(capsys.readouterr().out)

    code, listing = consumers()
    assert code == 0 and sorted(c["name"] for c in listing[arn]) == ["gen-01", "gen-02", "gen-03"]
    code, answer = consumers("--deregister", "gen-02")
    assert code == 0 and answer["streams"] == [arn]
    _, listing = consumers()
    assert sorted(c["name"] for c in listing[arn]) == ["gen-01", "gen-03"]


def test_kinesis_commands_refuse_a_dynamodb_streams_config(tmp_path, monkeypatch, capsys):
    """Without [source] kind = "kinesis" the commands say what to set instead of calling AWS."""
    monkeypatch.setenv("SEO_SYNC_DATA_DIR", str(tmp_path))
    code = run(["kinesis", "consumers"])
    assert code != 0 and "kind" in capsys.readouterr().err


def test_enable_on_the_embedded_aws_creates_the_stream_and_says_what_it_cannot_do(dynamo_endpoint, tmp_path,
                                                                                   monkeypatch, capsys):
    """moto has no streaming destinations (a bare HTTP 500): `kinesis enable` still creates the stream,
    reports every table's destination as not enabled and why, points at the local way, and exits 1, not 69."""
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/seo-enable-local"
    for k, v in {"SEO_SYNC_SOURCE__KIND": "kinesis", "SEO_SYNC_KINESIS__STREAM_ARN": arn,
                 "SEO_SYNC_AWS__ENDPOINT_URL": dynamo_endpoint, "SEO_SYNC_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)
    code = run(["--json", "kinesis", "enable"])
    captured = capsys.readouterr()
    assert code == 1, captured.err[-400:]
    report = json.loads(captured.out)
    assert report["streams"] == {arn: "created"}
    assert {t["destination"] for t in report["tables"].values()} == {"not enabled"}
    assert report["destinations_unavailable"]["call"] == "DescribeKinesisStreamingDestination"
    client = boto3.client("kinesis", endpoint_url=dynamo_endpoint, region_name="us-east-1")
    assert client.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"

    code = run(["kinesis", "enable"])  # again, for a person: the stream existed, the same explanation
    out = capsys.readouterr().out
    assert code == 1 and f"stream {arn}: existed" in out
    assert "does not serve DescribeKinesisStreamingDestination" in out and "check_destination = false" in out


def test_a_500_from_aws_itself_is_still_an_outage():
    """Only an endpoint that is not AWS's is taken to lack the call: AWS's own 500 stays an error to retry."""
    from botocore.exceptions import ClientError

    from seo_sync.aws.kinesis_admin import _not_served

    bare = ClientError({"Error": {"Code": "500", "Message": "<html>"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                       "DescribeKinesisStreamingDestination")

    class At:
        def __init__(self, endpoint: str) -> None:
            self.endpoint = endpoint

    assert _not_served(At("http://127.0.0.1:8000"), bare)  # type: ignore[arg-type]
    assert not _not_served(At("https://dynamodb.us-east-1.amazonaws.com"), bare)  # type: ignore[arg-type]
    coded = ClientError({"Error": {"Code": "InternalServerError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                        "DescribeKinesisStreamingDestination")
    assert not _not_served(At("http://127.0.0.1:8000"), coded)  # type: ignore[arg-type]
