"""A synthetic DynamoDB + Streams endpoint that serves generated tables of any size, fast.

It stands in for moto where moto is too slow to load (100,000 items would take minutes to load
and scan): the daemon talks to it over HTTP with its normal boto3 clients. It answers what a full
sync and an idle tailer need: DescribeTable, Scan (segments, ExclusiveStartKey, Limit, ~1 MB
pages), ListStreams, DescribeStream (one open shard a table), GetShardIterator and GetRecords
(always empty). The items are the benchmark's realistic businesses, pre-encoded once.

Run as `python -m tests.bench.fakesource PORT ITEMS` (the parent does that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from seo_sync.schema import TABLES
from tests.bench.datagen import business_items, businesses_for
from tests.bench.motoproc import REPO_ROOT, free_port, stop_child

PAGE_BYTES = 1_000_000
PREFIX = "seo_"
SEGMENT_BUCKETS = 64  # items are dealt to buckets; a Scan segment serves every bucket b with b % total == seg


class Tables:
    """Every table's items as (key, JSON text), dealt into buckets so any segment count partitions them."""

    def __init__(self, target_items: int) -> None:
        self.items: dict[str, list[list[tuple[tuple[str, ...], str]]]] = {
            t: [[] for _ in range(SEGMENT_BUCKETS)] for t in TABLES}
        count = businesses_for(target_items)
        self.total = 0
        for index in range(count):
            for table, its in business_items(index).items():
                spec = TABLES[table]
                bucket = self.items[table][index % SEGMENT_BUCKETS]
                for it in its:
                    bucket.append((tuple(it[k]["S"] for k in spec.key_names), json.dumps(it)))
                    self.total += 1
        self.created = time.time()

    def count(self, table: str) -> int:
        """Items in one table."""
        return sum(len(b) for b in self.items[table])

    def segment(self, table: str, seg: int, total: int) -> list[tuple[tuple[str, ...], str]]:
        """The items of one Scan segment, in a stable order."""
        out: list[tuple[tuple[str, ...], str]] = []
        for b in range(seg, SEGMENT_BUCKETS, total):
            out.extend(self.items[table][b])
        return out


def _table_name(body: dict[str, Any]) -> str:
    name = str(body.get("TableName", ""))
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def _arn(table: str, created: float) -> str:
    label = time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime(created))
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{PREFIX}{table}/stream/{label}"


class Handler(BaseHTTPRequestHandler):
    """One request of the DynamoDB / DynamoDB Streams JSON protocol."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle's algorithm on, the body's last segment waits
    # for the client's delayed ACK of the first (about 40 ms a request), a floor no real endpoint has.
    disable_nagle_algorithm = True
    tables: Tables
    segments_cache: dict[tuple[str, int, int], tuple[list[tuple[tuple[str, ...], str]], dict[tuple[str, ...], int]]]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _send(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "bench")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        """`GET /__ready`: the data is generated."""
        self._send(200, json.dumps({"items": self.tables.total}))

    def do_POST(self) -> None:
        """Dispatch on X-Amz-Target."""
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            self._send(400, json.dumps({"__type": "com.amazon.coral.validate#UnknownOperationException",
                                        "message": f"not served by the synthetic source: {op}"}))
            return
        status, answer = fn(body)
        self._send(status, answer if isinstance(answer, str) else json.dumps(answer))

    def _missing(self, table: str) -> tuple[int, dict[str, str]]:
        return 400, {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                     "message": f"Requested resource not found: {table}"}

    def op_DescribeTable(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Table description with an enabled NEW_AND_OLD_IMAGES stream."""
        table = _table_name(body)
        if table not in TABLES:
            return self._missing(table)
        spec = TABLES[table]
        keys = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
        if spec.range_key:
            keys.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
        return 200, {"Table": {
            "TableName": PREFIX + table, "TableStatus": "ACTIVE", "KeySchema": keys,
            "AttributeDefinitions": [{"AttributeName": k["AttributeName"], "AttributeType": "S"} for k in keys],
            "ItemCount": self.tables.count(table), "CreationDateTime": self.tables.created,
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "LatestStreamArn": _arn(table, self.tables.created),
            "LatestStreamLabel": _arn(table, self.tables.created).rsplit("/", 1)[-1],
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}}

    def op_ListTables(self, _body: dict[str, Any]) -> tuple[int, Any]:
        """The five table names."""
        return 200, {"TableNames": [PREFIX + t for t in TABLES]}

    def op_Scan(self, body: dict[str, Any]) -> tuple[int, Any]:
        """One page of one segment, up to Limit items and about 1 MB."""
        table = _table_name(body)
        if table not in TABLES:
            return self._missing(table)
        seg, total = int(body.get("Segment", 0)), int(body.get("TotalSegments", 1))
        key = (table, seg, total)
        if key not in self.segments_cache:
            items = self.tables.segment(table, seg, total)
            self.segments_cache[key] = (items, {k: i for i, (k, _) in enumerate(items)})
        items, position = self.segments_cache[key]
        start = 0
        if body.get("ExclusiveStartKey"):
            esk = body["ExclusiveStartKey"]
            start = position[tuple(esk[k]["S"] for k in TABLES[table].key_names)] + 1
        limit = int(body.get("Limit", 1_000_000))
        end, size = start, 0
        while end < len(items) and end - start < limit and size < PAGE_BYTES:
            size += len(items[end][1])
            end += 1
        parts = [f'{{"Items":[{",".join(text for _, text in items[start:end])}],'
                 f'"Count":{end - start},"ScannedCount":{end - start}']
        if end < len(items):
            last = dict(zip(TABLES[table].key_names, items[end - 1][0], strict=True))
            parts.append(f',"LastEvaluatedKey":{json.dumps({k: {"S": v} for k, v in last.items()})}')
        parts.append("}")
        return 200, "".join(parts)

    def op_ListStreams(self, _body: dict[str, Any]) -> tuple[int, Any]:
        """One stream per table."""
        return 200, {"Streams": [{"StreamArn": _arn(t, self.tables.created), "TableName": PREFIX + t,
                                  "StreamLabel": _arn(t, self.tables.created).rsplit("/", 1)[-1]} for t in TABLES]}

    def op_DescribeStream(self, body: dict[str, Any]) -> tuple[int, Any]:
        """One open shard."""
        arn = str(body.get("StreamArn", ""))
        table = arn.split("/")[1][len(PREFIX):] if arn.count("/") >= 3 else ""
        if table not in TABLES:
            return self._missing(arn)
        return 200, {"StreamDescription": {
            "StreamArn": arn, "StreamLabel": arn.rsplit("/", 1)[-1], "StreamStatus": "ENABLED",
            "StreamViewType": "NEW_AND_OLD_IMAGES", "TableName": PREFIX + table,
            "CreationRequestDateTime": self.tables.created,
            "Shards": [{"ShardId": "shardId-00000001700000000000-bench0001",
                        "SequenceNumberRange": {"StartingSequenceNumber": "100000000000000000001"}}]}}

    def op_GetShardIterator(self, body: dict[str, Any]) -> tuple[int, Any]:
        """An opaque iterator."""
        return 200, {"ShardIterator": f"bench|{body.get('StreamArn')}|{body.get('ShardId')}"}

    def op_GetRecords(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Nothing new, ever."""
        return 200, {"Records": [], "NextShardIterator": body.get("ShardIterator")}


def serve(port: int, target_items: int) -> None:
    """Generate the tables, then serve them on 127.0.0.1:`port` until killed."""
    Handler.tables = Tables(target_items)
    Handler.segments_cache = {}
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class FakeSourceProcess:
    """The parent's handle on a synthetic source child process."""

    def __init__(self, items: int, log_path: Path | None = None) -> None:
        self.items = items
        self.log_path = log_path
        self.endpoint = ""
        self.total = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> FakeSourceProcess:
        """Start it and wait until the data is generated and served."""
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.bench.fakesource", str(port), str(self.items)],
                                     stdout=out, stderr=out, env=env, cwd=str(REPO_ROOT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the synthetic source exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.endpoint + "/__ready", timeout=2) as resp:
                    self.total = int(json.loads(resp.read())["items"])
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the synthetic source did not start in time")

    def stop(self) -> None:
        """Stop the child (ours, by pid)."""
        stop_child(self.proc)
        self.proc = None


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
