"""The fast response path (raw_responses.py) checks itself against the installed botocore before use.

botocore is not pinned: the fast path hooks its `before-parse` event and that event's
`customized_response_dict` argument, which is not a documented interface. So, once per process
and service, before a client gets the fast path, a canned Scan page and a canned GetRecords page
(every AttributeValue type, binary, a timestamp, paging members) go through two throwaway clients
of the installed botocore: one parsed by botocore alone, one by the fast path. Only when botocore
passed the argument and both answers are equal does the client get the fast path; otherwise every
client keeps botocore's own parser (slower, still correct), one warning is logged, and `state()`
says why (the status document shows it).

The throwaway clients never reach the network: a `before-send` handler answers each request with
the canned bytes, so signing, botocore's CRC32 check and its parser run exactly as against DynamoDB.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import botocore
import botocore.session
import orjson
import structlog
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from seo_sync.aws import raw_responses

log = structlog.get_logger()

_B64 = base64.b64encode(b"\x00\x01seo\xff").decode()
_ITEM = {
    "business_id": {"S": "self-check"}, "n": {"N": "12.50"}, "big": {"N": "123456789012345678901234567890"},
    "b": {"B": _B64}, "bs": {"BS": [_B64, base64.b64encode(b"x").decode()]}, "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "-0.5"]}, "t": {"BOOL": True}, "none": {"NULL": True},
    "m": {"M": {"deep": {"L": [{"S": "x"}, {"B": _B64}, {"M": {"n": {"N": "1E+3"}}}]}}}, "l": {"L": []},
}
_KEY = {"business_id": {"S": "self-check"}}
# One canned successful answer per operation the fast path reads, as DynamoDB spells it.
CANNED: dict[str, tuple[str, str, dict[str, Any], bytes]] = {
    "Scan": ("dynamodb", "scan", {"TableName": "self_check"}, orjson.dumps({
        "Items": [_ITEM, {"business_id": {"S": "plain"}, "s": {"S": "é"}}], "Count": 2, "ScannedCount": 2,
        "LastEvaluatedKey": _KEY, "ConsumedCapacity": {"TableName": "self_check", "CapacityUnits": 1.5}})),
    "GetRecords": ("dynamodbstreams", "get_records", {"ShardIterator": "self-check"}, orjson.dumps({
        "Records": [{"eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                     "awsRegion": "us-east-1",
                     "dynamodb": {"ApproximateCreationDateTime": 1767225600.123, "Keys": _KEY, "NewImage": _ITEM,
                                  "OldImage": {**_KEY, "n": {"N": "1"}}, "SequenceNumber": "100000000001",
                                  "SizeBytes": 321, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                     "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}}],
        "NextShardIterator": "self-check-next"})),
}

_lock = threading.Lock()
_results: dict[str, str | None] = {}  # service -> None (the fast path checked out) or why it did not
_warned = False


class _Raw:
    """The urllib3-like body botocore reads a response's content from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _canned(body: bytes) -> Any:
    def answer(request: Any, **_: Any) -> AWSResponse:
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "self-check",
                   "x-amz-crc32": str(zlib.crc32(body)), "Content-Length": str(len(body))}
        return AWSResponse(request.url, 200, headers, _Raw(body))
    return answer


def _answer(session: Any, operation: str, fast: bool) -> tuple[dict[str, Any], bool]:
    """The parsed canned answer of `operation`, and whether botocore passed the hook's argument."""
    service, method, params, body = CANNED[operation]
    client = session.create_client(
        service, region_name="us-east-1", endpoint_url="http://self-check.invalid",
        aws_access_key_id="self-check", aws_secret_access_key="self-check",  # noqa: S106  # nosec B106
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    try:
        hyphenized = client.meta.service_model.service_id.hyphenize()
        passed: list[bool] = []
        client.meta.events.register_first(f"before-send.{hyphenized}", _canned(body))
        client.meta.events.register_first(
            f"before-parse.{hyphenized}.{operation}",
            lambda customized_response_dict=None, **_: passed.append(isinstance(customized_response_dict, dict)))
        if fast and not raw_responses.install(client):
            raise RuntimeError(f"the fast path found nothing to hook in {service}")
        answer = getattr(client, method)(**params)
        answer.pop("ResponseMetadata", None)
        return answer, bool(passed) and all(passed)
    finally:
        client.close()


def check_operation(session: Any, operation: str) -> str | None:
    """None when the fast path's answer to `operation`'s canned page equals botocore's; else why not."""
    try:
        plain, _ = _answer(session, operation, fast=False)
        fast, passed = _answer(session, operation, fast=True)
    except Exception as e:  # any failure of the check itself means: do not trust the fast path
        return f"{operation}: the self-check failed ({type(e).__name__}: {str(e)[:200]})"
    if not passed:
        return f"{operation}: botocore's before-parse event no longer passes customized_response_dict"
    if fast != plain:
        differs = sorted(k for k in plain.keys() | fast.keys() if plain.get(k) != fast.get(k))
        return f"{operation}: the fast path's answer differs from botocore's parser in {', '.join(differs)}"
    return None


def _session() -> Any:
    """A botocore session that reads no profile, config or credentials file of this host."""
    session = botocore.session.Session()
    for name, value in (("profile", None), ("config_file", "/dev/null"), ("credentials_file", "/dev/null")):
        session.set_config_variable(name, value)
    return session


def fast_path_ok(service: str) -> str | None:
    """None when `service`'s fast path checked out with this botocore (checked once per process); else why not."""
    global _warned
    with _lock:
        if service not in _results:
            operations = [op for op, (svc, *_) in CANNED.items() if svc == service]
            session = _session() if operations else None
            reasons = [r for op in operations if (r := check_operation(session, op)) is not None]
            _results[service] = "; ".join(reasons) or None
        reason = _results[service]
        if reason is not None and not _warned:
            _warned = True
            log.warning("fast_response_path_off", botocore=botocore.__version__, reason=reason,
                        effect="Scan and GetRecords answers are parsed by botocore (slower, same result)")
        return reason


def install_checked(client: Any) -> bool:
    """`raw_responses.install(client)` when the fast path checked out for its service; True if installed."""
    model = getattr(getattr(client, "meta", None), "service_model", None)
    if model is None:
        return False  # a test double shaped like a client: nothing to hook
    if fast_path_ok(model.service_name) is not None:
        return False
    return raw_responses.install(client)


def state() -> dict[str, Any]:
    """For the status document: whether the fast path is on, with this botocore, and why not."""
    with _lock:
        reasons = [r for r in _results.values() if r is not None]
        checked = bool(_results)
    return {"on": checked and not reasons, "checked": checked, "botocore": botocore.__version__,
            "reason": "; ".join(reasons) or None}


def force_off(reason: str) -> None:
    """Behave from now on as if every check had failed with `reason` (the benchmark's fallback run)."""
    with _lock:
        for service, *_ in CANNED.values():
            _results[service] = reason


def forget() -> None:
    """Drop the results (tests: check again after changing what botocore does)."""
    global _warned
    with _lock:
        _results.clear()
        _warned = False
