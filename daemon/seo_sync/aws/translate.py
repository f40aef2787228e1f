"""How the AWS layer reports failures: each DynamoDB error answer or SDK failure as one of errors.py's, with a hint.

No botocore here (it stays in session.py): session.py reads the error answer's code, or names
the kind of SDK failure, and these functions choose the exception, the message and the hint.
"""

from __future__ import annotations

from typing import Literal

from seo_sync.errors import (
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


SdkFailure = Literal["credentials", "region", "timeout", "connect", "other"]


def from_error_answer(where: str, code: str, status: int, msg: str) -> SourceError | BadInput:
    """The error for an error answer from DynamoDB (its code, HTTP status and message)."""
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


def from_sdk_failure(where: str, kind: SdkFailure, name: str, detail: str) -> SourceError:
    """The error for a failure of the SDK itself (`name` is its exception class, `detail` its text)."""
    if kind == "credentials":
        return AccessDenied(f"{where}: no AWS credentials found",
                            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or --env-file")
    if kind == "region":
        return SourceUnavailable("no AWS region configured", hint="set AWS_REGION or aws.region in the config")
    if kind == "timeout":
        return SourceUnavailable(f"{where}: timed out", hint="check the network and the endpoint")
    if kind == "connect":
        return SourceUnavailable(f"{where}: cannot connect ({name})",
                                 hint="check the network, AWS_ENDPOINT_URL and the region")
    return SourceError(f"{where}: {name}: {detail}")
