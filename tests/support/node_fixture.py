"""A real daemon on the embedded DynamoDB for the Node reader's tests (clients/node/test/).

Run by the Node tests as
`.venv/bin/python tests/support/node_fixture.py [--seed FILE] [--service-uid UID --service-gid GID]`:
- starts moto's DynamoDB server in this process and creates the five tables with plain boto3;
- writes the seed items (a JSON file: table name -> list of items in DynamoDB JSON, binary as
  base64) with plain boto3, so they reach the cache through the daemon's first full sync;
- starts `python -m seo_sync run` as a subprocess with its own data dir and status socket, waits
  until the socket answers `health` with ok, and prints one JSON line: endpoint, data_dir, cache,
  socket, pid, log;
- with --service-uid/--service-gid (as root) runs the daemon as that user and group with
  UMask 0027, in a data directory and socket directory laid out as systemd/seo-sync.service makes
  them (0750, owned by that user and group), inside a work directory others may traverse;
- then reads JSON requests from stdin, one a line, and answers each with one JSON line:
  {"op": "put", "table": T, "item": {...}} and {"op": "delete", "table": T, "key": {...}} write
  with plain boto3; the answer is {"ok": true} once DynamoDB has the write;
  the daemon's life cycle: {"op": "start"} starts it again and answers once `health` is ok
  ({"ok": true, "pid": N}); {"op": "terminate"} (SIGTERM) and {"op": "kill"} (SIGKILL) answer
  with its exit code once it has exited ({"ok": true, "exit_code": N}); {"op": "resync"} sends
  SIGHUP and answers once every table has finished a newer full sync and streams again;
  a failed request answers {"ok": false, "error": "..."};
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
from typing import Any, NamedTuple

import boto3

from seo_sync.control.client import request_json
from seo_sync.errors import SeoSyncError
from seo_sync.schema import DEFAULT_PREFIX, TABLES
from tests.support.moto_server import FAKE_CREDENTIALS, EmbeddedDynamo

READY_TIMEOUT = 120.0  # seconds: a loaded CI machine runs the first full sync slowly
RESYNC_TIMEOUT = 60.0  # seconds for a SIGHUP resync of every table
EXIT_TIMEOUT = 30.0  # seconds for the daemon to exit after SIGTERM (or SIGKILL)
SERVICE_UMASK = 0o027  # UMask= of systemd/seo-sync.service


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


class ServiceUser(NamedTuple):
    """The user and group the daemon runs as (`seo-sync:seo-sync` in the unit)."""

    uid: int
    gid: int


class ManagedDaemon:
    """`python -m seo_sync run` on `endpoint`, started, signalled and started again on request."""

    def __init__(self, endpoint: str, work: Path, service_user: ServiceUser | None) -> None:
        self.endpoint = endpoint
        self.data_dir, self.log_path = work / "data", work / "daemon.log"
        self.socket_path = work / "run" / "status.sock"
        self.service_user = service_user
        self.proc: subprocess.Popen[bytes] | None = None
        self.socket_path.parent.mkdir()
        if service_user is not None:
            # As the unit lays them out: others may traverse the work directory (like /var/lib);
            # the data and socket directories are 0750 and belong to the service user and group.
            work.chmod(0o755)
            for directory in (self.data_dir, self.socket_path.parent):
                directory.mkdir(exist_ok=True)
                os.chown(directory, service_user.uid, service_user.gid)
                directory.chmod(0o750)

    def start(self) -> int:
        """Start the daemon and wait until `health` is ok; its pid."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"the daemon is already running (pid {self.proc.pid})")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "NOTIFY_", "WATCHDOG_"))}
        env.update(FAKE_CREDENTIALS)
        env.update({
            "SEO_SYNC_AWS__ENDPOINT_URL": self.endpoint, "SEO_SYNC_DATA_DIR": str(self.data_dir),
            "SEO_SYNC_SOCKET": str(self.socket_path), "SEO_SYNC_LOG_FORMAT": "json",
            "SEO_SYNC_AWS__CONNECT_TIMEOUT": "1", "SEO_SYNC_AWS__READ_TIMEOUT": "3",
            "SEO_SYNC_IDLE_POLL_INTERVAL": "0.2", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "SEO_SYNC_CONTROL__MIN_RESYNC_INTERVAL": "0",
            "PYTHONUNBUFFERED": "1",
        })
        command = [sys.executable, "-m", "seo_sync", "run"]
        umask = -1  # the fixture's own
        if self.service_user is not None:
            # setpriv, as the service tests switch users: it also starts an interpreter installed where
            # only root may search (a pyenv under /root), which Popen(user=...) cannot exec.
            command = ["setpriv", f"--reuid={self.service_user.uid}", f"--regid={self.service_user.gid}",
                       "--clear-groups", *command]
            umask = SERVICE_UMASK
        with open(self.log_path, "ab") as log:  # the daemon keeps its own copy of the descriptor
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, umask=umask)
        self._wait_healthy(self.proc)
        return self.proc.pid

    def _wait_healthy(self, proc: subprocess.Popen[bytes]) -> None:
        """Poll `health` on the socket until ok; fail with the daemon's log if it exits or times out."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if request_json(self.socket_path, "health", timeout=2.0).get("ok"):
                    return
            except SeoSyncError:
                pass  # not listening yet, or answering "starting"
            time.sleep(0.05)
        raise RuntimeError(f"daemon not healthy (exit {proc.poll()}); log:\n{self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the daemon's log (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def running(self) -> subprocess.Popen[bytes]:
        """The running daemon's process; fails if there is none."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("the daemon is not running")
        return self.proc

    def signal_and_wait(self, sig: signal.Signals) -> int:
        """Send `sig` and wait until the daemon has exited; its exit code."""
        proc = self.running()
        proc.send_signal(sig)
        return proc.wait(EXIT_TIMEOUT)

    def resync(self) -> None:
        """SIGHUP, then wait until every table has a newer full sync and streams again."""
        proc = self.running()
        before = {name: table["last_full_sync"] or 0
                  for name, table in request_json(self.socket_path, "status", timeout=5.0)["tables"].items()}
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RESYNC_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                tables = request_json(self.socket_path, "status", timeout=5.0)["tables"]
            except SeoSyncError:
                tables = None  # a slow answer on a loaded machine: ask again until the deadline
            if tables and all(t["state"] == "streaming" and (t["last_full_sync"] or 0) > before[n]
                              for n, t in tables.items()):
                return
            time.sleep(0.02)
        raise RuntimeError(f"no resync of every table (exit {proc.poll()}); log:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM if it runs (SIGKILL if it does not exit)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def serve(client: Any, daemon: ManagedDaemon) -> None:
    """Answer write and life-cycle requests from stdin until it closes."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            answer: dict[str, Any] = {"ok": True}
            if request["op"] == "put":
                client.put_item(TableName=_table_name(request), Item=_binary(request["item"]))
            elif request["op"] == "delete":
                client.delete_item(TableName=_table_name(request), Key=request["key"])
            elif request["op"] == "start":
                answer["pid"] = daemon.start()
            elif request["op"] == "terminate":
                answer["exit_code"] = daemon.signal_and_wait(signal.SIGTERM)
            elif request["op"] == "kill":
                answer["exit_code"] = daemon.signal_and_wait(signal.SIGKILL)
            elif request["op"] == "resync":
                daemon.resync()
            else:
                raise ValueError(f"unknown op {request['op']!r}")
        except Exception as e:  # the test sees the failure in its answer
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


def _table_name(request: dict[str, Any]) -> str:
    return TABLES[request["table"]].dynamo_name(DEFAULT_PREFIX)


def main() -> int:
    """Start everything, print where it is, serve requests, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, help="JSON file: table -> items in DynamoDB JSON")
    parser.add_argument("--service-uid", type=int, help="run the daemon as this uid (as root; with --service-gid)")
    parser.add_argument("--service-gid", type=int, help="... and this gid, the cache's group")
    args = parser.parse_args()
    if (args.service_uid is None) != (args.service_gid is None):
        parser.error("--service-uid and --service-gid go together")
    service_user = None if args.service_uid is None else ServiceUser(args.service_uid, args.service_gid)
    for k, v in FAKE_CREDENTIALS.items():
        os.environ[k] = v
    # SIGTERM ends the process the same way as stdin closing: through the finally blocks below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    work = Path(tempfile.mkdtemp(prefix="ssn", dir="/tmp"))  # AF_UNIX paths must stay short
    server = EmbeddedDynamo().start()
    daemon: ManagedDaemon | None = None
    try:
        client = _client(server.endpoint)
        create_tables(client)
        if args.seed:
            write_seed(client, json.loads(args.seed.read_text(encoding="utf-8")))
        daemon = ManagedDaemon(server.endpoint, work, service_user)
        try:
            pid = daemon.start()
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
        print(json.dumps({"endpoint": server.endpoint, "data_dir": str(daemon.data_dir),
                          "cache": str(daemon.data_dir / "cache.db"), "socket": str(daemon.socket_path),
                          "pid": pid, "log": str(daemon.log_path)}), flush=True)
        serve(client, daemon)
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
