"""A fleet on Kinesis, end to end on moto: real daemons poll one stream the relay fills, and converge."""

from __future__ import annotations

import signal
import threading

from seo_sync import codec
from seo_sync.schema import TABLES
from tests.support.harness import wait_until
from tests.support.kinesis_fleet import cache_hashes, dynamo_hashes, kinesis_env, start_relay

FLEET = 4  # daemons: at one GetRecords call a shard a second each, 4 stay below the shard's shared 5


def write_history(source, stop: threading.Event, rounds: int, errors: list[Exception]) -> None:
    """A writer: versioned updates, soft and hard deletes, and new keywords; failures go to `errors`."""
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


def run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, **relay_options) -> None:
    """FLEET daemons on one stream under a writer, one killed -9 and restarted and one sent SIGHUP,
    all converging to caches identical to DynamoDB and to each other."""
    with start_relay(dynamo_endpoint, **relay_options) as relay:
        env = kinesis_env(relay.stream_arn)
        daemons = [start_daemon(data_dir=tmp_path / f"host{i}", extra_env=env) for i in range(FLEET)]
        for d in daemons:
            d.wait_ready()
        stop = threading.Event()
        errors: list[Exception] = []
        writer = threading.Thread(target=write_history, args=(seeded, stop, 40, errors), daemon=True)
        writer.start()
        daemons[0].signal(signal.SIGKILL)
        daemons[0].wait_exit(10)
        daemons[0] = start_daemon(data_dir=tmp_path / "host0", extra_env=env)
        daemons[1].signal(signal.SIGHUP)
        writer.join(60)
        assert not writer.is_alive() and not errors
        daemons[0].wait_ready()
        truth = dynamo_hashes(seeded)
        for d in daemons:
            wait_until(lambda d=d: cache_hashes(d.data_dir) == truth, timeout=60, what=f"{d.data_dir.name} converged")
        assert relay.relayed > 0
        status = daemons[2].status()
        assert status["feed"]["kind"] == "kinesis" and status["feed"]["shards"]


def test_a_fleet_polling_one_kinesis_stream_converges(seeded, start_daemon, tmp_path, dynamo_endpoint):
    """Daemons polling one Kinesis stream end with caches verify-identical to DynamoDB."""
    run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint)


def test_a_fleet_converges_through_shuffled_and_repeated_records(seeded, start_daemon, tmp_path, dynamo_endpoint):
    """With the relay shuffling and repeating records, every cache still ends equal to DynamoDB."""
    run_fleet(seeded, start_daemon, tmp_path, dynamo_endpoint, shuffle=True, duplicate=0.2, seed=7)
