"""A fleet on Kinesis, end to end on moto: real daemons read one stream the relay fills, by polling or
by enhanced fan-out through the EFO front, and converge."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from seo_sync import codec
from seo_sync.schema import TABLES
from tests.support.efo_front import MAX_CONSUMERS, EfoFront
from tests.support.harness import wait_until
from tests.support.kinesis_fleet import cache_hashes, dynamo_hashes, kill_and_hup_each, kinesis_env, start_relay

FLEET = 5  # polling daemons: at one GetRecords call a shard a second each, 5 make the shard's shared 5
EFO_FLEET = MAX_CONSUMERS  # enhanced fan-out daemons: one registered consumer each, AWS's most a stream
EFO_WAVE = 10  # daemons killed (and others sent SIGHUP) at once
WRITER_KEYS = 60  # business ids the writer changes (the seeded data has fewer: it creates the rest)
CONVERGE = 60.0  # seconds after the writer's stop by which every cache equals DynamoDB
SUBSCRIPTION_LIFETIME = 20.0  # seconds (AWS: 300), so every daemon renews its subscription in the test


def write_history(source, stop: threading.Event, rounds: int, errors: list[Exception], counts: dict[str, int]) -> None:
    """A writer until `stop` (or `rounds`): version bumps and resets, soft deletes and un-deletes, hard
    deletes, re-creations and new keywords, a round every 50 ms; writes counted in `counts`, failures
    go to `errors`."""
    try:
        _write(source, stop, rounds, counts)
    except Exception as e:  # the test thread asserts there were none
        errors.append(e)


def _write(source, stop: threading.Event, rounds: int, counts: dict[str, int]) -> None:
    biz = TABLES["businesses"]
    rng = random.Random(5)  # nosec B311: a test's writer
    versions: dict[str, int] = {}
    soft: set[str] = set()

    def put(bid: str, name: str, deleted: bool = False, bump: bool = True) -> None:
        versions[bid] = versions.get(bid, 1) + int(bump)
        item = {"business_id": bid, "name": name, "_version": versions[bid]}
        source.put_item(biz, codec.item_from_python({**item, "_deleted": True} if deleted else item))
        (soft.add if deleted else soft.discard)(bid)
        counts["writes"] += 1

    def delete(bid: str) -> None:
        source.ddb.delete_item(TableName="seo_businesses", Key={"business_id": {"S": bid}})
        versions.pop(bid, None)
        counts["writes"] += 1

    for r in range(rounds):
        if stop.is_set():
            break
        # Many keys, each changed now and then: a key's last change is often a reset or a delete,
        # which nothing later repairs if the cache got it wrong.
        bid = f"biz-{rng.randrange(WRITER_KEYS):03d}"
        roll = rng.random()
        if roll < 0.12:  # delete, then re-create with the version reset to 1 (a REMOVE carrying the old one)
            delete(bid)
            versions[bid] = 0
            put(bid, f"reset{r}")
        elif roll < 0.2:  # a reset with no delete: a foreign writer starting over
            versions[bid] = 0
            put(bid, f"foreign{r}")
        elif roll < 0.3:
            put(bid, "gone", deleted=True)
        elif roll < 0.4 and bid in soft:  # un-delete without a version bump
            put(bid, f"back{r}", bump=False)
        elif roll < 0.47:
            delete(bid)
        elif roll < 0.52:  # delete and re-create at once, the version going on
            version = versions.get(bid, 1)
            delete(bid)
            versions[bid] = version
            put(bid, f"again{r}")
        else:
            put(bid, f"r{r}")
        kw = {"business_id": f"biz-{rng.randrange(WRITER_KEYS):03d}", "keyword_id": f"new{rng.randrange(8)}#en"}
        if rng.random() < 0.2:
            source.ddb.delete_item(TableName="seo_keywords", Key={k: {"S": v} for k, v in kw.items()})
        else:
            source.put_item(TABLES["keywords"], codec.item_from_python({**kw, "keyword": f"k{r}", "language": "en"}))
        counts["writes"] += 1
        stop.wait(0.05)  # a steady trickle while the fleet is killed and restarted, not a burst
    for i in range(WRITER_KEYS):  # last, every key deleted and re-created at version 1: nothing repairs it later
        bid = f"biz-{i:03d}"
        delete(bid)
        versions[bid] = 0
        put(bid, "last")
        time.sleep(0.02)


def run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, *, fleet: int = FLEET, wave: int = 2,
              efo: bool = False, join: bool = True, **relay_options) -> dict[str, float]:
    """`fleet` daemons on one stream under a writer: each killed -9 (then restarted with its data dir)
    and sent SIGHUP once, `wave` at a time, except with `join` the last one, which joins (its first
    boot) once the writer runs and is left alone; anti-entropy off; all converging to caches identical to
    DynamoDB within CONVERGE seconds of the writer's stop. With `efo`, they read by enhanced fan-out
    through the front (one consumer each). Returns the front's counters and the run's figures."""
    with start_relay(dynamo_endpoint, **relay_options) as relay, \
            EfoFront(dynamo_endpoint, lifetime=SUBSCRIPTION_LIFETIME) as front:
        endpoint = front.endpoint if efo else dynamo_endpoint

        def start(name: str):
            env = kinesis_env(relay.stream_arn, consumer=name if efo else None)
            env["SEO_SYNC_VERIFY__ANTI_ENTROPY_PERIOD_HOURS"] = "0"  # a backstop, not how the fleet converges
            return start_daemon(endpoint=endpoint, data_dir=tmp_path / name, extra_env=env)

        daemons = [start(f"host{i:02d}") for i in range(fleet - int(join))]
        for d in daemons:
            d.wait_ready(90)
        stop = threading.Event()
        errors: list[Exception] = []
        counts = {"writes": 0}
        writer = threading.Thread(target=write_history, args=(seeded, stop, 100_000, errors, counts), daemon=True)
        writer.start()
        try:
            joiner = start(f"host{fleet - 1:02d}") if join else None  # its first boot under the writer
            if joiner is not None:
                joiner.wait_ready(90)
            kill_and_hup_each(daemons, lambda d: start(d.data_dir.name), wave)
            daemons += [joiner] if joiner is not None else []
        finally:
            stop.set()
            writer.join(60)
        stopped = time.monotonic()
        assert not writer.is_alive() and not errors
        truth = dynamo_hashes(seeded)
        deadline = stopped + CONVERGE
        for d in daemons:
            wait_until(lambda d=d: cache_hashes(d.data_dir) == truth, timeout=max(0.0, deadline - time.monotonic()),
                       what=f"{d.data_dir.name} converged within {CONVERGE:g} s of the writer's stop")
        converged = time.monotonic() - stopped
        assert relay.relayed > 0 and (relay.delayed > 0 or not relay_options.get("late"))
        if efo:  # a subscription that ran its lifetime was renewed (already so, unless the machine was quick)
            wait_until(lambda: any(d.status()["feed"]["renewals"] for d in daemons), timeout=3 * SUBSCRIPTION_LIFETIME,
                       what="a renewed subscription")
        statuses = [d.status() for d in daemons]
        status = statuses[-1]["feed"]
        assert status["kind"] == "kinesis" and status["mode"] == ("efo" if efo else "polling") and status["shards"]
        for d in daemons:  # all stop together, while moto and the front still answer their last calls
            d.signal(signal.SIGTERM)
        for d in daemons:
            d.wait_exit(30)
        reads = sorted(st["repairs"]["done"] for st in statuses)
        figures = {"writes": counts["writes"], "converged_seconds": round(converged, 1), "delayed": relay.delayed,
                   "repair_reads_per_1000_writes_median": round(1000 * reads[len(reads) // 2] / counts["writes"], 1)}
        print("fleet figures:", figures)
        return {**front.stats(), **figures}


@pytest.mark.slow
def test_a_polling_fleet_converges_through_shuffled_and_repeated_records(seeded, start_daemon, tmp_path,
                                                                         dynamo_endpoint):
    """Five daemons polling one Kinesis stream under a writer that resets versions, deletes and re-creates,
    soft-deletes and un-deletes, with the relay shuffling, repeating and holding back records (some
    well past the feed's lateness): every cache equals DynamoDB within a minute of the writer's stop."""
    run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, shuffle=True, duplicate=0.2, late=0.08,
              max_delay=5.0, seed=7)


@pytest.mark.slow
def test_twenty_daemons_by_enhanced_fan_out_converge(seeded, start_daemon, tmp_path, dynamo_endpoint):
    """Twenty consumers (AWS's most a stream), each a real daemon with pushed subscriptions that end and
    are renewed, each killed -9 and restarted as the same consumer, and sent SIGHUP, under the same writer,
    with the relay shuffling, repeating and holding back records: every cache ends equal to DynamoDB."""
    stats = run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, fleet=EFO_FLEET, wave=EFO_WAVE, efo=True,
                      join=False, shuffle=True, duplicate=0.2, late=0.08, max_delay=5.0, seed=11)
    assert stats["consumers"] == EFO_FLEET and stats["pushed"] > 0
    assert stats["subscriptions"] > EFO_FLEET and stats["ended"] > 0  # renewed, and taken again after restarts
