"""A fleet on Kinesis, end to end on moto: real daemons read one stream the relay fills, by polling or
by enhanced fan-out through the EFO front, and converge."""

from __future__ import annotations

import signal
import threading

from seo_sync import codec
from seo_sync.schema import TABLES
from tests.support.efo_front import MAX_CONSUMERS, EfoFront
from tests.support.harness import wait_until
from tests.support.kinesis_fleet import cache_hashes, dynamo_hashes, kill_and_hup_each, kinesis_env, start_relay

FLEET = 5  # polling daemons: at one GetRecords call a shard a second each, 5 make the shard's shared 5
EFO_FLEET = MAX_CONSUMERS  # enhanced fan-out daemons: one registered consumer each, AWS's most a stream
EFO_WAVE = 10  # daemons killed (and others sent SIGHUP) at once
SUBSCRIPTION_LIFETIME = 20.0  # seconds (AWS: 300), so every daemon renews its subscription in the test


def write_history(source, stop: threading.Event, rounds: int, errors: list[Exception]) -> None:
    """A writer until `stop` (or `rounds`): versioned updates, soft and hard deletes, and new
    keywords, a round every 50 ms; failures go to `errors`."""
    try:
        _write(source, stop, rounds)
    except Exception as e:  # the test thread asserts there were none
        errors.append(e)


def _write(source, stop: threading.Event, rounds: int) -> None:
    biz = TABLES["businesses"]
    for r in range(rounds):
        if stop.is_set():
            return
        bid = f"biz-{r % 7:03d}"
        source.put_item(biz, codec.item_from_python({"business_id": bid, "name": f"r{r}", "_version": r + 2}))
        if r % 5 == 4:
            source.ddb.delete_item(TableName="seo_businesses", Key={"business_id": {"S": f"biz-{10 + r:03d}"}})
        if r % 6 == 5:
            source.put_item(biz, codec.item_from_python({"business_id": f"biz-{r:03d}", "name": "gone",
                                                         "_version": 99, "_deleted": True}))
        source.put_item(TABLES["keywords"], codec.item_from_python(
            {"business_id": bid, "keyword_id": f"new{r}#en", "keyword": f"k{r}", "language": "en"}))
        stop.wait(0.05)  # a steady trickle while the fleet is killed and restarted, not a burst


def run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, *, fleet: int = FLEET, wave: int = 2,
              efo: bool = False, **relay_options) -> dict[str, int]:
    """`fleet` daemons on one stream under a writer, each killed -9 (then restarted with its data dir)
    and sent SIGHUP once, `wave` at a time, all converging to caches identical to DynamoDB and to each
    other. With `efo`, they read by enhanced fan-out through the front (one consumer each); the
    front's counters are returned."""
    with start_relay(dynamo_endpoint, **relay_options) as relay, \
            EfoFront(dynamo_endpoint, lifetime=SUBSCRIPTION_LIFETIME) as front:
        endpoint = front.endpoint if efo else dynamo_endpoint

        def start(name: str):
            env = kinesis_env(relay.stream_arn, consumer=name if efo else None)
            return start_daemon(endpoint=endpoint, data_dir=tmp_path / name, extra_env=env)

        daemons = [start(f"host{i:02d}") for i in range(fleet)]
        for d in daemons:
            d.wait_ready(90)
        stop = threading.Event()
        errors: list[Exception] = []
        writer = threading.Thread(target=write_history, args=(seeded, stop, 100_000, errors), daemon=True)
        writer.start()
        try:
            kill_and_hup_each(daemons, lambda d: start(d.data_dir.name), wave)
        finally:
            stop.set()
            writer.join(30)
        assert not writer.is_alive() and not errors
        truth = dynamo_hashes(seeded)
        for d in daemons:
            wait_until(lambda d=d: cache_hashes(d.data_dir) == truth, timeout=90, what=f"{d.data_dir.name} converged")
        assert relay.relayed > 0
        if efo:  # a subscription that ran its lifetime was renewed (already so, unless the machine was quick)
            wait_until(lambda: any(d.status()["feed"]["renewals"] for d in daemons), timeout=3 * SUBSCRIPTION_LIFETIME,
                       what="a renewed subscription")
        status = daemons[-1].status()["feed"]
        assert status["kind"] == "kinesis" and status["mode"] == ("efo" if efo else "polling") and status["shards"]
        for d in daemons:  # all stop together, while moto and the front still answer their last calls
            d.signal(signal.SIGTERM)
        for d in daemons:
            d.wait_exit(30)
        return front.stats()


def test_a_polling_fleet_converges_through_shuffled_and_repeated_records(seeded, start_daemon, tmp_path,
                                                                         dynamo_endpoint):
    """Five daemons polling one Kinesis stream, with the relay shuffling and repeating records as AWS
    may: every cache still ends equal to DynamoDB."""
    run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, shuffle=True, duplicate=0.2, seed=7)


def test_twenty_daemons_by_enhanced_fan_out_converge(seeded, start_daemon, tmp_path, dynamo_endpoint):
    """Twenty consumers (AWS's most a stream), each a real daemon with pushed subscriptions that end and
    are renewed, each killed -9 and restarted as the same consumer, and sent SIGHUP, with the relay
    shuffling and repeating records: every cache ends equal to DynamoDB."""
    stats = run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, fleet=EFO_FLEET, wave=EFO_WAVE, efo=True,
                      shuffle=True, duplicate=0.2, seed=11)
    assert stats["consumers"] == EFO_FLEET and stats["pushed"] > 0
    assert stats["subscriptions"] > EFO_FLEET and stats["ended"] > 0  # renewed, and taken again after restarts
