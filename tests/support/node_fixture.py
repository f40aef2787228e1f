"""A real daemon on the embedded DynamoDB for the Node reader's tests (clients/node/test/).

Run by the Node tests as `.venv/bin/python tests/support/node_fixture.py [--seed FILE]`:
- starts moto's DynamoDB server in this process and creates the five tables with plain boto3;
- writes the seed items (a JSON file: table name -> list of items in DynamoDB JSON, binary as
  base64) with plain boto3, so they reach the cache through the daemon's first full sync;
- starts `python -m seo_sync run` as a subprocess with its own data dir and status socket, waits
  until the socket answers `health` with ok, and prints one JSON line: endpoint, data_dir, cache,
  socket, pid;
- then reads JSON requests from stdin, one a line, and answers each with one JSON line:
  {"op": "put", "table": T, "item": {...}} and {"op": "delete", "table": T, "key": {...}} write
  with plain boto3; the answer is {"ok": true} once DynamoDB has the write;
- stops the daemon (SIGTERM) and the server when stdin closes or on SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from seo_sync.control.client import request_json
from seo_sync.demo.embedded import FAKE_CREDENTIALS, EmbeddedDynamo
from seo_sync.errors import SeoSyncError
from seo_sync.schema import DEFAULT_PREFIX, TABLES

READY_TIMEOUT = 120.0  # seconds: a loaded CI machine runs the first full sync slowly


def _binary(value: Any) -> Any:
    """DynamoDB JSON with base64 text for binary -> the shape boto3's client takes (bytes)."""
    if isinstance(value, dict):
        if set(value) == {"B"} and isinstance(value["B"], str):
            return {"B": base64.b64decode(value["B"])}
        if set(value) == {"BS"}:
            return {"BS": [base64.b64decode(b) for b in value["BS"]]}
        return {k: _binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_binary(v) for v in value]
    return value


def _client(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=FAKE_CREDENTIALS["AWS_REGION"],
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        aws_session_token="testing")


def create_tables(client: Any) -> None:
    """The five tables, on demand, streams with new and old images."""
    for spec in TABLES.values():
        key_schema = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
        if spec.range_key:
            key_schema.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
        client.create_table(
            TableName=spec.dynamo_name(DEFAULT_PREFIX), KeySchema=key_schema, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in spec.key_names],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})


def write_seed(client: Any, seed: dict[str, list[dict[str, Any]]]) -> None:
    """Every seed item, 25 to a BatchWriteItem, unprocessed items retried."""
    for table, items in seed.items():
        name = TABLES[table].dynamo_name(DEFAULT_PREFIX)
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": _binary(item)}} for item in items[start:start + 25]]
            while requests:
                answer = client.batch_write_item(RequestItems={name: requests})
                requests = answer.get("UnprocessedItems", {}).get(name, [])


def start_daemon(endpoint: str, work: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`python -m seo_sync run` on `endpoint`; its process, data dir and socket path."""
    data_dir, socket_path = work / "data", work / "status.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "NOTIFY_", "WATCHDOG_"))}
    env.update(FAKE_CREDENTIALS)
    env.update({
        "SEO_SYNC_AWS__ENDPOINT_URL": endpoint, "SEO_SYNC_DATA_DIR": str(data_dir),
        "SEO_SYNC_SOCKET": str(socket_path), "SEO_SYNC_LOG_FORMAT": "json",
        "SEO_SYNC_AWS__CONNECT_TIMEOUT": "1", "SEO_SYNC_AWS__READ_TIMEOUT": "3",
        "SEO_SYNC_IDLE_POLL_INTERVAL": "0.2", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "PYTHONUNBUFFERED": "1",
    })
    with open(work / "daemon.log", "wb") as log:  # the daemon keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "seo_sync", "run"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, data_dir, socket_path


def wait_healthy(proc: subprocess.Popen[bytes], socket_path: Path, log_path: Path) -> None:
    """Poll `health` on the socket until ok; fail with the daemon's log if it exits or times out."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if request_json(socket_path, "health", timeout=2.0).get("ok"):
                return
        except SeoSyncError:
            pass  # not listening yet, or answering "starting"
        time.sleep(0.05)
    tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
    raise SystemExit(f"daemon not healthy (exit {proc.poll()}); log:\n{tail}")


def serve(client: Any) -> None:
    """Answer write requests from stdin until it closes."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            name = TABLES[request["table"]].dynamo_name(DEFAULT_PREFIX)
            if request["op"] == "put":
                client.put_item(TableName=name, Item=_binary(request["item"]))
            elif request["op"] == "delete":
                client.delete_item(TableName=name, Key=request["key"])
            else:
                raise ValueError(f"unknown op {request['op']!r}")
            answer: dict[str, Any] = {"ok": True}
        except Exception as e:  # the test sees the failure in its answer
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


def main() -> int:
    """Start everything, print where it is, serve writes, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, help="JSON file: table -> items in DynamoDB JSON")
    args = parser.parse_args()
    for k, v in FAKE_CREDENTIALS.items():
        os.environ[k] = v
    # SIGTERM ends the process the same way as stdin closing: through the finally blocks below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    work = Path(tempfile.mkdtemp(prefix="ssn", dir="/tmp"))  # AF_UNIX paths must stay short
    server = EmbeddedDynamo().start()
    proc = None
    try:
        client = _client(server.endpoint)
        create_tables(client)
        if args.seed:
            write_seed(client, json.loads(args.seed.read_text(encoding="utf-8")))
        proc, data_dir, socket_path = start_daemon(server.endpoint, work)
        wait_healthy(proc, socket_path, work / "daemon.log")
        print(json.dumps({"endpoint": server.endpoint, "data_dir": str(data_dir),
                          "cache": str(data_dir / "cache.db"), "socket": str(socket_path),
                          "pid": proc.pid, "log": str(work / "daemon.log")}), flush=True)
        serve(client)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
