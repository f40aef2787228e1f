"""A loopback HTTP server that answers SubscribeToShard in the AWS event-stream framing.

The frames are written here byte by byte from the framing's definition (a prelude of total length,
headers length and its CRC32; string headers `:message-type`, `:event-type`, `:content-type`; a
JSON payload; the CRC32 of the whole message), and read by boto3's own client and botocore's own
decoder, so a test shows that the daemon's enhanced fan-out path decodes what AWS sends.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def frame(event_type: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One event-stream message."""
    headers = b""
    for name, value in ((":message-type", message_type), (":event-type", event_type),
                        (":content-type", "application/json")):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + bytes([7]) + struct.pack(">H", len(raw)) + raw
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def wire_record(seq: str, data: bytes, partition_key: str = "pk", arrival: float = 1_700_000_000.5) -> dict[str, Any]:
    """One Kinesis record as the wire carries it: Data in base64, the arrival time in epoch seconds."""
    return {"SequenceNumber": seq, "Data": base64.b64encode(data).decode(), "PartitionKey": partition_key,
            "ApproximateArrivalTimestamp": arrival}


def kinesis_event(records: list[tuple[str, bytes]], continuation: str | None,
                  children: list[str] | None = None, *, wired: list[dict[str, Any]] | None = None,
                  behind_ms: int = 0, parent: str = "shardId-000000000000") -> dict[str, Any]:
    """A SubscribeToShardEvent payload: `records` as (sequence number, data), or `wired` already in wire form."""
    out: dict[str, Any] = {
        "Records": [wire_record(seq, data) for seq, data in records] + (wired or []),
        "ContinuationSequenceNumber": continuation, "MillisBehindLatest": behind_ms,
    }
    if children is not None:
        out["ChildShards"] = [{"ShardId": c, "ParentShards": [parent],
                               "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"}} for c in children]
    return out


class EventStreamServer:
    """Serves `events` (payloads of SubscribeToShardEvent) to every SubscribeToShard, after the initial response."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                owner.requests.append({"target": self.headers.get("x-amz-target"),
                                       "body": json.loads(self.rfile.read(length) or b"{}")})
                body = frame("initial-response", {}) + b"".join(frame("SubscribeToShardEvent", e) for e in events)
                self.send_response(200)
                self.send_header("content-type", "application/vnd.amazon.eventstream")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EventStreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
