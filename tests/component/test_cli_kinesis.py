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
