"""How source.py reports AWS failures: each botocore error as one of errors.py's, with a hint.

Part of the AWS layer with source.py (the only two modules that import botocore).
"""

from __future__ import annotations

import botocore.exceptions as bexc

from daemon.errors import (
    AccessDenied,
    BadInput,
    IteratorExpired,
    SourceError,
    SourceThrottled,
    SourceUnavailable,
    StreamGone,
    TableMissing,
)

THROTTLE_CODES = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException",
    "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable", "InternalFailure",
    "TransactionConflictException",
}
AUTH_CODES = {
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredTokenException", "ExpiredToken", "MissingAuthenticationToken", "IncompleteSignature",
    "InvalidClientTokenId", "SignatureDoesNotMatch",
}


class ErrorContext:
    """Names the endpoint, region and table in error messages."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint = endpoint
        self.region = region

    def translate(self, exc: Exception, what: str, table: str | None = None) -> SourceError:
        """Turn a botocore exception into a SourceError with a hint."""
        where = f"{what} on {table or 'DynamoDB'} at {self.endpoint} ({self.region})"
        if isinstance(exc, bexc.ClientError):
            err = exc.response.get("Error", {})
            code = err.get("Code", "")
            msg = str(err.get("Message", ""))[:200]
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code == "ResourceNotFoundException":
                return TableMissing(f"{where}: not found ({msg})",
                                    hint="check the table prefix and region, or run `seo-sync create-tables`")
            if code in AUTH_CODES:
                return AccessDenied(f"{where}: {code}",
                                    hint="check AWS credentials and that the IAM policy allows this action "
                                         "(see config/iam-daemon.json)")
            if code == "TrimmedDataAccessException":
                return StreamGone(f"{where}: stream records were trimmed ({msg})", hint="a full sync repairs it")
            if code == "ExpiredIteratorException":
                return IteratorExpired(f"{where}: shard iterator expired")
            if code in THROTTLE_CODES or status >= 500:
                return SourceThrottled(f"{where}: {code or status} ({msg})", hint="backing off and retrying")
            if code == "ValidationException":
                return BadInput(f"{where}: rejected: {msg}",
                                hint="DynamoDB refused the request as malformed (an item over 400 KB, a key "
                                     "that does not match the table's key schema, an empty string key); fix "
                                     "the input and retry")
            return SourceError(f"{where}: {code} ({msg})")
        if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
            return AccessDenied(f"{where}: no AWS credentials found",
                                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or --env-file")
        if isinstance(exc, bexc.NoRegionError):
            return SourceUnavailable("no AWS region configured", hint="set AWS_REGION or aws.region in the config")
        # Timeouts first: botocore's are HTTPClientError / ConnectionError subclasses.
        if isinstance(exc, bexc.ReadTimeoutError | bexc.ConnectTimeoutError):
            return SourceUnavailable(f"{where}: timed out", hint="check the network and the endpoint")
        if isinstance(exc, bexc.EndpointConnectionError | bexc.ConnectionError | bexc.HTTPClientError):
            return SourceUnavailable(f"{where}: cannot connect ({type(exc).__name__})",
                                     hint="check the network, AWS_ENDPOINT_URL and the region")
        return SourceError(f"{where}: {type(exc).__name__}: {str(exc)[:200]}")


CAUGHT = (bexc.BotoCoreError, bexc.ClientError)  # what every AWS call of source.py catches and translates
