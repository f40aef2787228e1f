"""Whole answers only: each successful AWS answer the daemon acts on is checked before it is read.

A network that cuts a response inside its headers leaves http.client with a status line, a few
headers and no Content-Length; the body is then read up to the close, which is nothing, and
botocore's parser reads an empty body as `{}`. Taken at its word that is a GetRecords page at a
closed shard's end, a GetItem of an absent item, a Scan of an empty table. So a 2xx answer here is
used only when it is whole: a body that is a JSON object, as long as its Content-Length says, with
the CRC32 DynamoDB puts in `x-amz-crc32` matching it (once an endpoint has sent one, every later
answer must carry it), and the members that the operation always answers with. Anything else is
`IncompleteAnswer`, a retryable error: the callers already back off and try again on those.

The check is botocore's `before-parse` event, registered ahead of the orjson reader
(`raw_responses.py`), so both parsers only ever see whole answers. The same hook reads the answer's
`Date` into a `ServerClock`: DynamoDB's own clock, which stamps reads instead of this host's.
"""

from __future__ import annotations

import email.utils
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from seo_sync.errors import IncompleteAnswer

HANDLER_ID = "seo_sync.answers"
# The members a successful answer of each checked operation always has; a JSON body without one is
# not an answer of that operation but what was left of one. GetItem has none (an absent item is `{}`),
# so for it only the body's length, CRC32 and braces speak.
REQUIRED: dict[str, tuple[str, ...]] = {
    "GetRecords": ("Records",),
    "Scan": ("Count",),  # Items too, unless Select=COUNT: tables.py asks for them where it reads them
    "Query": ("Count",),
    "GetItem": (),
    "BatchWriteItem": (),  # a cut answer would hide its UnprocessedItems
    "DescribeTable": ("Table",),
    "DescribeStream": ("StreamDescription",),
    "GetShardIterator": ("ShardIterator",),
    "ListShards": ("Shards",),
}
CLOCK_WINDOW = 60.0  # seconds of Date observations the server clock estimate is taken from


def http_date(value: str | None) -> float | None:
    """An HTTP Date header as epoch seconds; None when absent or unreadable (HTTP dates are GMT)."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=when.tzinfo or UTC).timestamp()


class ServerClock:
    """DynamoDB's clock as its answers' `Date` headers show it, next to this host's.

    A Date is whole seconds, rounded down, written just before the answer left: an answer that
    arrives at host time `at` says the offset lies in [Date - at, Date + 1 - at) (give or take the
    trip back). The estimate is the middle of what the last minute's answers leave of that
    interval: within half a second from the first answer, closer as answers land near a second's
    turn. `now()` is this host's clock moved by it, whatever this host's clock says.
    """

    def __init__(self, wall: Callable[[], float] = time.time, window: float = CLOCK_WINDOW) -> None:
        self.wall = wall
        self.window = window
        self._seen: deque[tuple[float, float]] = deque()  # (host time, offset's lower bound)
        self._lock = threading.Lock()

    def observe(self, date: float, at: float | None = None) -> None:
        """One answer's Date, received at host time `at` (now by default)."""
        at = self.wall() if at is None else at
        with self._lock:
            self._seen.append((at, date - at))
            while self._seen and (at - self._seen[0][0] > self.window or len(self._seen) > 4096):
                self._seen.popleft()

    def offset(self) -> float | None:
        """Seconds DynamoDB's clock is ahead of this host's (negative: behind); None before any answer."""
        with self._lock:
            if not self._seen:
                return None
            low = max(bound for _, bound in self._seen)
            high = min(bound for _, bound in self._seen) + 1.0
            if low > high:  # a clock was stepped inside the window: the newest answer alone
                low = self._seen[-1][1]
                high = low + 1.0
            return (low + high) / 2

    def now(self) -> float:
        """DynamoDB's clock now, as well as known (this host's until an answer was seen)."""
        offset = self.offset()
        return self.wall() + (offset or 0.0)


def on_server_clock(clock: ServerClock | None, host_now: float) -> float:
    """`host_now` moved onto DynamoDB's clock as its answers showed it (unchanged before any answer)."""
    offset = clock.offset() if clock is not None else None
    return host_now + (offset or 0.0)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # botocore lower-cases header names; a hand-built dict may not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


class AnswerCheck:
    """The before-parse check of one client's answers (and the ServerClock it feeds)."""

    def __init__(self, clock: ServerClock | None = None) -> None:
        self.clock = clock
        self.crc_seen = False  # this endpoint sends x-amz-crc32: from now on an answer without one is cut

    def problem(self, operation: str, response: Mapping[str, Any]) -> str | None:
        """Why this successful answer is not whole, or None when it is."""
        body = response.get("body")
        headers = response.get("headers") or {}
        if type(body) is not bytes:
            return "its body is not in hand"
        text = body.strip()
        if not text:
            return "its body is empty"
        length = _header(headers, "content-length")
        encoded = _header(headers, "content-encoding") not in (None, "", "identity")
        chunked = "chunked" in (_header(headers, "transfer-encoding") or "").lower()
        if length is None and not chunked:
            return "it has no Content-Length (its headers were cut)"
        if length is not None and not encoded:
            try:
                if int(length) != len(body):
                    return f"its body is {len(body)} bytes of the {length} announced"
            except ValueError:
                return f"its Content-Length {length[:20]!r} is not a number"
        if not (text.startswith(b"{") and text.endswith(b"}")):
            return "its body is not a JSON object"
        crc = _header(headers, "x-amz-crc32")
        if crc is None:
            if self.crc_seen:
                return "it has no x-amz-crc32 (its headers were cut)"
        else:
            self.crc_seen = True
            if not encoded and crc.strip().isdigit() and int(crc) != zlib.crc32(body):
                return "its CRC32 does not match its body"
        for member in REQUIRED.get(operation, ()):
            if f'"{member}"'.encode() not in body:
                return f"it has no {member}"
        return None

    def __call__(self, operation_model: Any = None, response_dict: Any = None, **_: Any) -> None:
        """botocore's before-parse handler: IncompleteAnswer for a successful answer that is not whole."""
        if operation_model is None or not isinstance(response_dict, dict):
            return
        if response_dict.get("status_code", 500) >= 300:
            return  # error answers are botocore's (ClientError), and retried by it where they may be
        headers = response_dict.get("headers") or {}
        name = str(getattr(operation_model, "name", "?"))
        why = self.problem(name, response_dict)
        if why is not None:
            raise IncompleteAnswer(f"{name}: the answer arrived incomplete: {why}",
                                   hint="the network cut or garbled it; the call is retried")
        date = http_date(_header(headers, "date"))
        if date is not None and self.clock is not None:
            self.clock.observe(date)


def install(client: Any, clock: ServerClock | None = None) -> AnswerCheck | None:
    """Check this client's answers of the operations in REQUIRED from now on (first, before any other reader)."""
    meta = getattr(client, "meta", None)
    events = getattr(meta, "events", None)
    model = getattr(meta, "service_model", None)
    if events is None or model is None:
        return None  # a test double shaped like a client: its answers are whole by construction
    check = AnswerCheck(clock)
    service = model.service_id.hyphenize()
    for op in REQUIRED:
        if op in model.operation_names:
            events.register_first(f"before-parse.{service}.{op}", check, unique_id=f"{HANDLER_ID}.{service}.{op}")
    return check
