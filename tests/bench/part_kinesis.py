"""Part 3b: replication lag of one host reading Kinesis Data Streams (polling), beside DynamoDB Streams.

moto does not forward a table's changes to Kinesis, so the demo's relay plays DynamoDB's part: it
reads moto's DynamoDB Streams every 50 ms and puts KDS-shaped records into a Kinesis stream. The
figures therefore include the relay's hop, where on AWS they would include DynamoDB's own (not
published; measured by AWS users at a few hundred ms). The daemon polls each shard at most once a
second (`[kinesis] polls_per_second = 1`, what five hosts can share), which bounds its lag from
below; enhanced fan-out is pushed instead and has no such floor, but needs real AWS to measure.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from seo_sync.demo.relay import Relay
from tests.bench import part_lag
from tests.bench.daemonproc import DaemonProcess
from tests.bench.ddb import PREFIX
from tests.bench.motoproc import MotoProcess

RELAY_INTERVAL = 0.05  # seconds between the relay's passes
FIRST_MARK = 2_000_000  # this run's change numbers, apart from the other lag runs'


def measure_kinesis(moto: MotoProcess, work: Path, *, rate: float, seconds: float, reader_interval: float,
                    boot_timeout: float) -> dict[str, Any]:
    """One daemon in Kinesis polling mode under the same writer and reader as the other lag runs.

    The writer does not seed here: seeding resets the items' `_version` to 1 below what this daemon
    read at boot, and a lower version is refused as older (on Kinesis, version order is the order).
    """
    relay = Relay(moto.endpoint, PREFIX)
    arn = relay.ensure_stream()
    relay.step()  # everything loaded so far, before the daemon takes its positions
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop, RELAY_INTERVAL), name="bench-relay", daemon=True)
    thread.start()
    daemon = DaemonProcess(work / "kinesis-daemon", moto.endpoint, env={
        "SEO_SYNC_SOURCE__KIND": "kinesis", "SEO_SYNC_KINESIS__MODE": "polling",
        "SEO_SYNC_KINESIS__STREAM_ARN": arn, "SEO_SYNC_KINESIS__CHECK_DESTINATION": "0"}).start()
    try:
        daemon.wait_ready(boot_timeout)
        before = moto.counts()
        raw = part_lag.measure(moto.endpoint, daemon.cache_path, work / "lag-kinesis", rate=rate, seconds=seconds,
                               first=FIRST_MARK, seed=False, reader_interval=reader_interval)
        after = moto.counts()
        raw["calls"] = {k: after.get(k, 0) - before.get(k, 0) for k in after if "Records" in k or "Shard" in k}
    finally:
        daemon.stop()
        stop.set()
        thread.join(10)
    return raw
