"""`seo-sync demo --fleet N`: N daemons on one Kinesis stream, on the embedded local AWS.

The sample data is loaded, the relay (`relay.py`) plays DynamoDB's part of Kinesis Data Streams for
DynamoDB, N daemons read the stream in polling mode (each its own data directory and socket, as N
hosts would), and the demo's simulated writer edits the data. The live view shows every host's
state, rows and lag; at the end each host's cache is compared with DynamoDB as `seo-sync verify`
compares them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.codec import is_deleted, item_hash
from seo_sync.config import Settings
from seo_sync.control.client import request_json
from seo_sync.demo.embedded import fake_credentials_env, load_sample_into
from seo_sync.demo.relay import Relay
from seo_sync.demo.writer import SimulatedWriter
from seo_sync.errors import DaemonUnavailable
from seo_sync.schema import TABLES

WRITE_EVERY = 0.5  # seconds between the simulated writer's changes
REFRESH_EVERY = 0.25
SETTLE_TIMEOUT = 30.0  # seconds the hosts get, at the end, to apply the last changes
BOOT_LIMIT = 90.0  # seconds a timed run waits for every host to be ready before it ends without writing


def _host_dir(settings: Settings, i: int) -> Path:
    return settings.data_dir / f"host{i}"


def start_host(settings: Settings, endpoint: str, i: int, stream_arn: str) -> subprocess.Popen[bytes]:
    """`seo-sync run` for host `i`, reading `stream_arn` by polling."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "AWS_", "NOTIFY_SOCKET"))}
    env.update(fake_credentials_env())
    env.update({"SEO_SYNC_AWS__ENDPOINT_URL": endpoint, "SEO_SYNC_LOG_FORMAT": "json",
                "SEO_SYNC_SOURCE__KIND": "kinesis", "SEO_SYNC_KINESIS__MODE": "polling",
                "SEO_SYNC_KINESIS__STREAM_ARN": stream_arn, "SEO_SYNC_KINESIS__CHECK_DESTINATION": "0",
                # The relay forwards each change within one of its passes (a quarter of a second):
                # a full sync need not wait out AWS's default lateness for it.
                "SEO_SYNC_KINESIS__MAX_LATENESS": "1",
                "SEO_SYNC_KINESIS__CONSUMER_NAME": f"demo-host{i}"})
    work = _host_dir(settings, i)
    work.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "seo_sync", "--data-dir", str(work), "--socket", str(work / "seo-sync.sock"),
            "--table-prefix", settings.table_prefix, "run"]
    with open(work / "daemon.log", "ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def _status(settings: Settings, i: int) -> dict[str, Any] | None:
    try:
        return request_json(_host_dir(settings, i) / "seo-sync.sock", "status", timeout=2.0)
    except DaemonUnavailable:
        return None


def _hashes_of_cache(path: Path) -> dict[str, set[tuple[tuple[str, ...], str]]]:
    reader = Reader.open(path)
    try:
        with reader.snapshot():
            return {s.name: {(s.key_of_item(it), item_hash(it)) for it in reader.items(s)} for s in TABLES.values()}
    finally:
        reader.close()


def _hashes_of_dynamo(source: Source) -> dict[str, set[tuple[tuple[str, ...], str]]]:
    return {s.name: {(s.key_of_item(it), item_hash(it)) for page in source.scan(s) for it in page
                     if not is_deleted(it)} for s in TABLES.values()}


def fleet_table(statuses: list[dict[str, Any] | None], relayed: int, edits: int, elapsed: float) -> Table:
    """The live view: one row a host."""
    t = Table(title=f"seo-sync demo: a fleet on one Kinesis stream (Ctrl-C to stop), up {elapsed:.0f}s",
              caption=f"relay: {relayed} records into Kinesis   writer: {edits} changes")
    for col in ("host", "state", "rows", "applied", "max lag s", "GetRecords calls"):
        t.add_column(col)
    for i, st in enumerate(statuses):
        tables = (st or {}).get("tables") or {}
        t.add_row(f"host{i}", str((st or {}).get("state", "starting")),
                  str(sum(int(v.get("rows") or 0) for v in tables.values())),
                  str(sum(int(v.get("records_applied") or 0) for v in tables.values())),
                  f"{max((float(v.get('lag_seconds') or 0) for v in tables.values()), default=0):.2f}",
                  str((st or {}).get("get_records_calls", "")))
    return t


def _timed_out(seconds: float | None, started: float, ready_at: float | None) -> bool:
    """Whether a timed run is over: `seconds` after every host was ready, or BOOT_LIMIT without that."""
    if seconds is None:
        return False
    now = time.monotonic()
    return now - ready_at >= seconds if ready_at is not None else now - started >= BOOT_LIMIT


def run_fleet_demo(settings: Settings, endpoint: str, console: Console, hosts: int,
                   seconds: float | None = None) -> dict[str, Any]:
    """Load the sample data, run `hosts` daemons on one stream fed by the relay, write and watch; a summary."""
    source = Source(settings.aws, settings.table_prefix)
    for spec in TABLES.values():
        source.create_table(spec)
    load_sample_into(source)
    relay = Relay(endpoint, settings.table_prefix)
    arn = relay.ensure_stream()
    relay.step()
    procs = [start_host(settings, endpoint, i, arn) for i in range(hosts)]
    writer = SimulatedWriter(source)
    started = time.monotonic()
    ready_at: float | None = None  # `seconds` counts from when every host is ready: booting is not the run
    next_write = started
    statuses: list[dict[str, Any] | None] = [None] * hosts
    try:
        with Live(fleet_table(statuses, 0, 0, 0), console=console, refresh_per_second=4,
                  transient=not console.is_terminal) as live:
            while not _timed_out(seconds, started, ready_at):
                relay.step()
                statuses = [_status(settings, i) for i in range(hosts)]
                if ready_at is None and all(st and st.get("ready") for st in statuses):
                    ready_at = time.monotonic()
                if ready_at is not None and time.monotonic() >= next_write and (
                        seconds is None or time.monotonic() - ready_at < seconds - 3):
                    writer.step()
                    next_write = time.monotonic() + WRITE_EVERY
                live.update(fleet_table(statuses, relay.relayed, writer.stats.edits, time.monotonic() - started))
                time.sleep(REFRESH_EVERY)
    except KeyboardInterrupt:
        pass
    truth = _hashes_of_dynamo(source)
    identical = [False] * hosts
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not all(identical) and time.monotonic() < deadline:
        relay.step()
        identical = [_hashes_of_cache(_host_dir(settings, i) / "cache.db") == truth for i in range(hosts)]
        time.sleep(REFRESH_EVERY)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(30))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait(5))
    return {"endpoint": endpoint, "stream": arn, "hosts": hosts, "relayed": relay.relayed,
            "writer_changes": writer.stats.edits + writer.stats.new_keywords + writer.stats.soft_deletes,
            "identical_to_dynamodb": identical, "exit_codes": codes,
            "data_dirs": [str(_host_dir(settings, i)) for i in range(hosts)]}
