"""botocore errors become seo-sync errors that name the call, the table and the endpoint, with a hint."""

from __future__ import annotations

import botocore.exceptions as bexc
import pytest

from seo_sync import errors
from seo_sync.aws.session import ErrorContext

CTX = ErrorContext("https://dynamodb.eu-west-1.amazonaws.com", "eu-west-1")


def _client_error(code: str, status: int = 400, message: str = "details") -> bexc.ClientError:
    return bexc.ClientError({"Error": {"Code": code, "Message": message},
                             "ResponseMetadata": {"HTTPStatusCode": status}}, "GetRecords")


@pytest.mark.parametrize(("exc", "kind", "says"), [
    (_client_error("ResourceNotFoundException"), errors.TableMissing, "not found"),
    (_client_error("AccessDeniedException"), errors.AccessDenied, "AccessDeniedException"),
    (_client_error("ExpiredTokenException"), errors.AccessDenied, "ExpiredTokenException"),
    (_client_error("TrimmedDataAccessException"), errors.StreamGone, "trimmed"),
    (_client_error("ExpiredIteratorException"), errors.IteratorExpired, "expired"),
    (_client_error("ProvisionedThroughputExceededException"), errors.SourceThrottled, "Provisioned"),
    (_client_error("Whatever", status=503), errors.SourceThrottled, "Whatever"),
    (_client_error("ValidationException"), errors.BadInput, "rejected"),
    (_client_error("SomethingNew"), errors.SourceError, "SomethingNew"),
    (bexc.NoCredentialsError(), errors.AccessDenied, "no AWS credentials"),
    (bexc.NoRegionError(), errors.SourceUnavailable, "no AWS region"),
    (bexc.EndpointConnectionError(endpoint_url="https://x"), errors.SourceUnavailable, "cannot connect"),
    (bexc.ReadTimeoutError(endpoint_url="https://x"), errors.SourceUnavailable, "timed out"),
    (bexc.ConnectTimeoutError(endpoint_url="https://x"), errors.SourceUnavailable, "timed out"),
])
def test_each_botocore_error_maps_to_its_kind_and_says_what_happened(exc, kind, says):
    """Each family of botocore error becomes its own SeoSyncError subclass with a telling message."""
    out = CTX.translate(exc, "GetRecords", "seo_keywords")
    assert type(out) is kind
    assert says in out.message
    if kind is not errors.IteratorExpired and kind is not errors.SourceError:
        assert out.hint


def test_a_read_timeout_is_not_reported_as_a_refused_connection():
    """botocore's timeout errors subclass its connection errors: the operator must still read "timed out"."""
    # Why the order of the checks matters:
    assert issubclass(bexc.ReadTimeoutError, bexc.HTTPClientError)
    assert issubclass(bexc.ConnectTimeoutError, bexc.ConnectionError)
    for exc in (bexc.ReadTimeoutError(endpoint_url="https://x"), bexc.ConnectTimeoutError(endpoint_url="https://x")):
        out = CTX.translate(exc, "Scan", "seo_businesses")
        assert "timed out" in out.message and "cannot connect" not in out.message


def test_message_names_call_table_endpoint_and_region():
    """The operator reads which call on which table at which endpoint failed."""
    out = CTX.translate(_client_error("ResourceNotFoundException"), "DescribeTable", "seo_keywords")
    for part in ("DescribeTable", "seo_keywords", "https://dynamodb.eu-west-1.amazonaws.com", "eu-west-1"):
        assert part in out.message
