"""Part 3b: replication lag of one host reading Kinesis Data Streams, by polling and by enhanced
fan-out, beside DynamoDB Streams.

moto does not forward a table's changes to Kinesis, so the demo's relay plays DynamoDB's part: it
reads moto's DynamoDB Streams every 50 ms and puts KDS-shaped records into a Kinesis stream. The
figures therefore include the relay's hop, where on AWS they would include DynamoDB's own (not
published; measured by AWS users at a few hundred ms). In polling mode the daemon polls each shard
at most once a second (`[kinesis] polls_per_second = 1`, what five hosts can share), which bounds
its lag from below. Enhanced fan-out is pushed instead: moto has no SubscribeToShard, so the EFO
run goes through `tests/support/efo_front.py`, which tails moto's shard every `front_tail` seconds
(the bench's plan: 10 ms), and at once when the relay's PutRecords pass through it (the relay puts
through the front), and pushes each record to the subscription as an event-stream frame.
That tail is a hop AWS does not have (AWS quotes about 70 ms from put to push), so the EFO figures
are those of the fake, not of AWS: they show the daemon's side of the push path (wake, decode,
unwrap, apply), not the service's latency.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.bench import part_lag
from tests.bench.daemonproc import DaemonProcess
from tests.bench.ddb import PREFIX
from tests.bench.motoproc import MotoProcess
from tests.support.efo_front import EfoFront
from tests.support.moto_server import Relay

RELAY_INTERVAL = 0.05  # seconds between the relay's passes
FIRST_MARK = 2_000_000  # this run's change numbers, apart from the other lag runs'
EFO_FIRST_MARK = 3_000_000
EFO_CONSUMER = "bench-host"
WARM_UP = 5.0  # seconds of writes before the measured ones
WARM_DRAIN = 10.0  # seconds the warm-up's writes may take to become visible (the host starting to stream)
WARM_MARKS = 500_000  # the measured change numbers start this far after the warm-up's (the reader counts
# a change seen once its number passes the last seen, so each run's numbers must be higher than before)


def measure_kinesis(moto: MotoProcess, work: Path, *, rate: float, seconds: float, reader_interval: float,
                    boot_timeout: float, efo: bool = False, front_tail: float = 0.01) -> dict[str, Any]:
    """One daemon in Kinesis polling mode (or, with `efo`, enhanced fan-out through the EFO front)
    under the same writer and reader as the other lag runs.

    The measured writes come after a warm-up of the same writer, once the host streams. The writer
    does not seed here: seeding resets the items' `_version` to 1 below what this daemon
    read at boot, and a lower version is refused as older (on Kinesis, version order is the order).
    Each run has a stream of its own, so the second does not start behind the first's records.
    """
    # Subscriptions last AWS's 5 minutes; the front reads moto's shard every `front_tail` seconds, and
    # at once when the relay's PutRecords pass through it.
    front = EfoFront(moto.endpoint, poll=front_tail) if efo else None
    if front is not None:
        front.__enter__()
    relay = Relay(moto.endpoint, PREFIX, stream_name="seo-changes-efo" if efo else "seo-changes",
                  kinesis_endpoint=front.endpoint if front is not None else None)
    arn = relay.ensure_stream()
    relay.step()  # everything loaded so far, before the daemon takes its positions
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop, RELAY_INTERVAL), name="bench-relay", daemon=True)
    thread.start()
    env = {"SEO_SYNC_SOURCE__KIND": "kinesis", "SEO_SYNC_KINESIS__MODE": "polling",
           "SEO_SYNC_KINESIS__STREAM_ARN": arn, "SEO_SYNC_KINESIS__CHECK_DESTINATION": "0"}
    if front is not None:
        env.update({"SEO_SYNC_KINESIS__MODE": "efo", "SEO_SYNC_KINESIS__CONSUMER_NAME": EFO_CONSUMER})
    daemon = DaemonProcess(work / ("kinesis-efo-daemon" if efo else "kinesis-daemon"),
                           front.endpoint if front is not None else moto.endpoint, env=env).start()
    try:
        daemon.wait_ready(boot_timeout)
        # Not counted: the same writer for a few seconds first. READY comes before a Kinesis host
        # streams: its first positions are taken to a sequence number by polling, and an EFO host
        # registers its consumer (after a random wait of up to 3 s) before it subscribes. Counted,
        # that start showed as seconds of lag in the first window of both runs.
        part_lag.measure(moto.endpoint, daemon.cache_path, work / ("warm-kinesis-efo" if efo else "warm-kinesis"),
                         rate=rate, seconds=WARM_UP, first=EFO_FIRST_MARK if efo else FIRST_MARK,
                         seed=False, reader_interval=reader_interval, drain=WARM_DRAIN)
        before, fed = moto.counts(), _feed_calls(daemon)
        raw = part_lag.measure(moto.endpoint, daemon.cache_path, work / ("lag-kinesis-efo" if efo else "lag-kinesis"),
                               rate=rate, seconds=seconds, first=(EFO_FIRST_MARK if efo else FIRST_MARK) + WARM_MARKS,
                               seed=False, reader_interval=reader_interval)
        after, fed_after = moto.counts(), _feed_calls(daemon)
        # moto's counts hold every caller's (the relay's DynamoDB Streams reads, the EFO front's tail):
        # the daemon's own GetRecords calls are those its feed counted.
        raw["calls"] = {k: after.get(k, 0) - before.get(k, 0) for k in after if "Records" in k or "Shard" in k}
        raw["calls"]["daemon GetRecords"] = fed_after - fed
        if front is not None:
            raw["calls"].update({f"front {k}": v for k, v in front.stats().items()})
    finally:
        daemon.stop()
        if front is not None:
            front.__exit__(None, None, None)
        stop.set()
        thread.join(10)
    return raw


def _feed_calls(daemon: DaemonProcess) -> int:
    """GetRecords calls the daemon's feed has made so far, from its status (wherever the answer nests it)."""
    def find(node: Any) -> int | None:
        if isinstance(node, dict):
            if isinstance(node.get("feed"), dict) and "get_records_calls" in node["feed"]:
                return int(node["feed"]["get_records_calls"])
            for value in node.values():
                found = find(value)
                if found is not None:
                    return found
        return None

    return find(daemon.status(timeout=10.0)) or 0
