"""A fleet of real daemons reading one Kinesis stream on moto, fed by the demo's relay.

`start_relay` runs `demo/relay.py`'s `Relay` on a thread of the test process (it plays DynamoDB's
part of Kinesis Data Streams for DynamoDB). `kinesis_env` is what a daemon needs to read that
stream in polling mode, or by enhanced fan-out through `efo_front.py`'s front. `dynamo_hashes` and
`cache_hashes` are what `seo-sync verify` compares, per table: one content hash of DynamoDB and one
of the cache. `kill_and_hup_each` gives every daemon of a fleet a kill -9 and a SIGHUP, in waves.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.cli.inspect import table_hash
from seo_sync.schema import TABLES
from tests.support.harness import Daemon, wait_until
from tests.support.moto_server import Relay


@contextmanager
def start_relay(endpoint: str, **kwargs: object) -> Iterator[Relay]:
    """The relay stepping on a thread until the block ends; its stream exists on entry."""
    relay = Relay(endpoint, "seo_", **kwargs)  # type: ignore[arg-type]
    relay.ensure_stream()
    relay.step()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop, 0.1), name="relay", daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(10)


def kinesis_env(stream_arn: str, consumer: str | None = None) -> dict[str, str]:
    """The environment of a daemon that reads `stream_arn` by polling, or by enhanced fan-out as
    `consumer` when one is named (moto has no streaming destination to check). The relay forwards
    each change within one of its passes, so a full sync need not wait out AWS's default lateness."""
    env = {"SEO_SYNC_SOURCE__KIND": "kinesis", "SEO_SYNC_KINESIS__MODE": "polling",
           "SEO_SYNC_KINESIS__STREAM_ARN": stream_arn, "SEO_SYNC_KINESIS__CHECK_DESTINATION": "0",
           "SEO_SYNC_KINESIS__MAX_LATENESS": "0.5"}
    if consumer is not None:
        env.update({"SEO_SYNC_KINESIS__MODE": "efo", "SEO_SYNC_KINESIS__CONSUMER_NAME": consumer})
    return env


def dynamo_hashes(source: Source) -> dict[str, str]:
    """Per table, the content hash of DynamoDB's live (not soft-deleted) items."""
    out = {}
    for spec in TABLES.values():
        items = {spec.key_of_item(it): codec.item_hash(it)
                 for page in source.scan(spec) for it in page if not codec.is_deleted(it)}
        out[spec.name] = table_hash(items)
    return out


def cache_hashes(data_dir: Path) -> dict[str, str]:
    """Per table, the content hash of the cache's items, read in one snapshot."""
    reader = Reader.open(data_dir / "cache.db")
    try:
        with reader.snapshot():
            return {spec.name: table_hash({spec.key_of_item(it): codec.item_hash(it) for it in reader.items(spec)})
                    for spec in TABLES.values()}
    finally:
        reader.close()


def resynced(daemon: Daemon) -> bool:
    """Whether the daemon has logged a resync request (SIGHUP) and, after it, a full sync of every table."""
    text = daemon.log()
    at = text.rfind('"resync_requested"')
    return at >= 0 and text.count('"full_sync_done"', at) >= len(TABLES)


def kill_and_hup_each(daemons: list[Daemon], restart: Callable[[Daemon], Daemon], wave: int) -> None:
    """Every daemon gets a kill -9 (then a restart with the same data dir, by `restart`) and a SIGHUP,
    `wave` of each at a time: a wave's killed daemons are restarted while the wave's others resync,
    and the next wave starts once the restarted are READY and the others' resyncs are done."""
    n = len(daemons)
    for start in range(0, n, wave):
        killed = list(range(start, min(start + wave, n)))
        hupped = [(i + wave) % n for i in killed]  # another wave's daemons, each once over the whole run
        for i in killed:
            daemons[i].signal(signal.SIGKILL)
        for i in hupped:
            daemons[i].signal(signal.SIGHUP)
        for i in killed:
            daemons[i].wait_exit(10)
            daemons[i] = restart(daemons[i])
        for i in killed:
            daemons[i].wait_ready(90)
        for d in (daemons[i] for i in hupped):
            wait_until(partial(resynced, d), timeout=90, what=f"{d.data_dir.name} resynced")
