"""`Source.server_time`: DynamoDB's own clock from a DescribeTable answer's Date header (the full
sync's catch-up bound), read as GMT whatever this host's zone, None when the header is missing or bad."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from seo_sync.aws.tables import Source
from seo_sync.config import AwsSettings
from seo_sync.schema import BUSINESSES

NOON = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC).timestamp()


class DescribeOnly:
    """A dynamodb client that answers DescribeTable with the given HTTP headers."""

    meta = SimpleNamespace(endpoint_url="http://dynamo.test", region_name="eu-west-1")

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.asked: list[str] = []

    def describe_table(self, TableName: str) -> dict[str, Any]:
        self.asked.append(TableName)
        return {"Table": {"TableName": TableName}, "ResponseMetadata": {"HTTPHeaders": self.headers}}


def server_time(headers: dict[str, str]) -> tuple[float | None, list[str]]:
    client = DescribeOnly(headers)
    src = Source(AwsSettings(region="eu-west-1"), "seo_", dynamodb_client=client, streams_client=object())
    return src.server_time(BUSINESSES), client.asked


@pytest.fixture
def host_far_from_gmt(monkeypatch):
    """This process in Los Angeles' zone for the test (naive datetimes then read 8 hours off)."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("date", ["Wed, 25 Nov 2026 12:00:00 GMT", "Wed, 25 Nov 2026 12:00:00 -0000",
                                  "Wed, 25 Nov 2026 13:00:00 +0100"])
def test_the_date_header_is_dynamodbs_clock_in_gmt(date, host_far_from_gmt):
    """RFC 1123 dates, a zone-less one included, give the same instant even on a host far from GMT."""
    got, asked = server_time({"date": date})
    assert got == NOON
    assert asked == ["seo_businesses"]


@pytest.mark.parametrize("headers", [{}, {"date": ""}, {"date": "yesterday-ish"}])
def test_no_usable_date_header_is_none(headers):
    """Missing or unparseable: None, and the full sync falls back to this host's clock."""
    assert server_time(headers)[0] is None
