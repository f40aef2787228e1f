"""The AWS session: boto3's credential chain and client settings, and how SDK failures are reported.

Every botocore failure is translated into the exception tree of `errors.py` with a hint for the
operator (the choice of error, message and hint is `translate.py`'s; here botocore's exception
classes are read).
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.exceptions as bexc
from botocore.config import Config

from seo_sync.aws import reachability
from seo_sync.aws.translate import SdkFailure, from_error_answer, from_sdk_failure
from seo_sync.config import AwsSettings
from seo_sync.errors import BadInput, ConfigError, SourceError

CAUGHT = (bexc.BotoCoreError, bexc.ClientError)  # what every AWS call here catches and translates
# The kind of each SDK failure; the first match wins, because botocore's timeout errors subclass its
# connection errors (ReadTimeoutError an HTTPClientError, ConnectTimeoutError a ConnectionError).
SDK_FAILURES: tuple[tuple[tuple[type[Exception], ...], SdkFailure], ...] = (
    ((bexc.NoCredentialsError, bexc.PartialCredentialsError), "credentials"),
    ((bexc.NoRegionError,), "region"),
    ((bexc.ReadTimeoutError, bexc.ConnectTimeoutError), "timeout"),
    ((bexc.EndpointConnectionError, bexc.ConnectionError, bexc.HTTPClientError), "connect"),
)


class ErrorContext:
    """Names the endpoint, region and table in error messages."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint = endpoint
        self.region = region

    def translate(self, exc: Exception, what: str, table: str | None = None) -> SourceError | BadInput:
        """Turn a botocore exception into a SourceError with a hint (see translate.py)."""
        where = f"{what} on {table or 'DynamoDB'} at {self.endpoint} ({self.region})"
        if isinstance(exc, bexc.ClientError):
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return from_error_answer(where, err.get("Code", ""), status, str(err.get("Message", ""))[:200])
        kind: SdkFailure = next((k for types, k in SDK_FAILURES if isinstance(exc, types)), "other")
        return from_sdk_failure(where, kind, type(exc).__name__, str(exc)[:200])


def make_session(aws: AwsSettings) -> boto3.session.Session:
    """A boto3 session: explicit settings where given, boto3's own chain for the rest."""
    kwargs: dict[str, Any] = {}
    if aws.profile:
        kwargs["profile_name"] = aws.profile
    if aws.access_key_id and aws.secret_access_key:
        kwargs["aws_access_key_id"] = aws.access_key_id.get_secret_value()
        kwargs["aws_secret_access_key"] = aws.secret_access_key.get_secret_value()
        if aws.session_token:
            kwargs["aws_session_token"] = aws.session_token.get_secret_value()
    if aws.region:
        kwargs["region_name"] = aws.region
    try:
        session = boto3.session.Session(**kwargs)
    except bexc.ProfileNotFound as e:
        # botocore reads the profile's files while building the session, so a misspelt AWS_PROFILE
        # (or [aws] profile) fails here, before any call: a configuration error, not a traceback.
        name = aws.profile or str(e.kwargs.get("profile", ""))
        raise ConfigError(f"AWS profile {name!r} not found",
                          hint=f"the profile {name} is not in ~/.aws/config or ~/.aws/credentials (or the files "
                               "AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE name); set AWS_PROFILE (or [aws] "
                               "profile) to one that is, or unset it") from None
    reachability.watch(session, call_bound(aws))  # calls in flight and answers, for the watchdog and health
    return session


def call_bound(aws: AwsSettings) -> float:
    """The longest one call can take: every attempt's connect and read timeouts (with a margin for an
    answer that trickles in), and the standard retry mode's backoff between attempts (capped at 20 s)."""
    backoff = sum(min(2.0 ** i, 20.0) for i in range(1, aws.max_attempts))
    return aws.max_attempts * (aws.connect_timeout + aws.read_timeout + 2.0) + backoff


def client_config(aws: AwsSettings) -> Config:
    """Timeouts well below the watchdog interval and bounded retries, so no AWS call can outlast a watchdog ping."""
    return Config(
        connect_timeout=aws.connect_timeout,
        read_timeout=aws.read_timeout,
        retries={"mode": "standard", "total_max_attempts": aws.max_attempts},  # first call included
        account_id_endpoint_mode="disabled",
        max_pool_connections=32,
    )
