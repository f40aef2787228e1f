"""kill -9 of a real engine process (tests/support/engine_runner.py) against moto's server, while plain
boto3 keeps writing: after every kill the cache passes integrity_check, no `_version` regressed, and
the cache equals the stream replayed up to its checkpoint (never ahead, never behind it)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from seo_sync.aws.tables import Source
from seo_sync.schema import BUSINESSES
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

ROOT = str(Path(__file__).resolve().parents[2])
TABLE = "seo_businesses"
pytestmark = pytest.mark.timeout(300)  # ~30 s idle, ~55 s on a loaded 2-core machine
FREE_KILLS = 3  # test_kill_9_mid_batch: kills that may land anywhere before the first full sync ever completed


class Runner:
    """The fork server: one engine process at a time, started and killed on command."""

    def __init__(self, endpoint: str, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.engine_runner", "--endpoint", endpoint, "--data-dir", str(data_dir),
             "--fork-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT})

    def _ask(self, line: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def start(self, resync: bool = False) -> int:
        """Fork an engine process; its pid."""
        return int(self._ask("start resync" if resync else "start"))

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> int:
        """Send `sig` and reap; the raw wait status."""
        os.kill(pid, sig)
        return int(self._ask(f"wait {pid}"))

    def close(self) -> None:
        """Stop the fork server."""
        try:
            self._ask("quit")
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class StreamLog:
    """moto's (single-shard) stream for the table, read incrementally from TRIM_HORIZON."""

    def __init__(self, endpoint: str) -> None:
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.client = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
        arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        shard = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.it = self.client.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self.records: list[tuple[int, str, int | None]] = []  # (seq, key, version or None = absent)

    def update(self) -> None:
        """Read to the current end."""
        while True:
            resp = self.client.get_records(ShardIterator=self.it, Limit=1000)
            self.it = resp["NextShardIterator"]
            for r in resp["Records"]:
                d = r["dynamodb"]
                new = d.get("NewImage")
                present = r["eventName"] != "REMOVE" and not (new or {}).get("_deleted", {}).get("BOOL")
                version = int(new["_version"]["N"]) if present else None
                self.records.append((int(d["SequenceNumber"]), d["Keys"]["business_id"]["S"], version))
            if not resp["Records"]:
                return

    def state_at(self, seq: int) -> dict[str, int]:
        """key -> _version of every present item after replaying records up to `seq`."""
        out: dict[str, int] = {}
        for s, key, version in self.records:
            if s > seq:
                break
            if version is None:
                out.pop(key, None)
            else:
                out[key] = version
        return out


class Writer(threading.Thread):
    """Plain boto3 puts, soft deletes and hard deletes with ever-increasing _version."""

    def __init__(self, endpoint: str, keys: int, version_start: int) -> None:
        super().__init__(daemon=True)
        self.ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.keys = keys
        self.version = version_start
        self.halt = threading.Event()
        self.rng = random.Random(7)

    def run(self) -> None:
        while not self.halt.is_set():
            self.version += 1
            k = f"b{self.rng.randrange(self.keys):05d}"
            roll = self.rng.random()
            if roll < 0.1:
                self.ddb.delete_item(TableName=TABLE, Key={"business_id": {"S": k}})
            else:
                item = {"business_id": {"S": k}, "name": {"S": f"v{self.version}"},
                        "_version": {"N": str(self.version)}}
                if roll < 0.2:
                    item["_deleted"] = {"BOOL": True}
                self.ddb.put_item(TableName=TABLE, Item=item)
            time.sleep(0.004)


def cache_state(path: Path) -> tuple[str, dict[str, int], str | None, bool]:
    """(integrity, key -> _version, checkpoint seq, shadow table present) of the cache file."""
    conn = sqlite3.connect(path, timeout=10)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = dict(conn.execute("SELECT business_id, _version FROM businesses").fetchall())
        cp = conn.execute("SELECT sequence_number FROM _sync_checkpoints WHERE table_name = 'businesses'").fetchone()
        shadow = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = '_shadow_businesses'").fetchone()[0]
        return integrity, rows, cp[0] if cp else None, bool(shadow)
    finally:
        conn.close()


def shadow_present(path: Path) -> bool:
    """True once a full sync's shadow table is committed in the cache file."""
    if not path.exists():
        return False
    conn = sqlite3.connect(path, timeout=10)
    try:
        return bool(conn.execute("SELECT count(*) FROM sqlite_master WHERE name = '_shadow_businesses'").fetchone()[0])
    finally:
        conn.close()


def full_syncs_done(data_dir: Path) -> int:
    """How many full syncs the engine processes have finished so far (runner.log, flushed per line)."""
    log = data_dir / "runner.log"
    return log.read_text(errors="replace").count("full_sync_done") if log.exists() else 0


def dynamo_state(endpoint: str) -> dict[str, int]:
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    out, kwargs = {}, {"TableName": TABLE, "ConsistentRead": True}
    while True:
        resp = ddb.scan(**kwargs)
        for it in resp["Items"]:
            if not it.get("_deleted", {}).get("BOOL"):
                out[it["business_id"]["S"]] = int(it["_version"]["N"])
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


@pytest.fixture
def setup(tmp_path, dynamo_endpoint):
    settings = make_settings(tmp_path / "data", dynamo_endpoint)
    source = Source(settings.aws, settings.table_prefix)
    source.create_table(BUSINESSES)
    runner = Runner(dynamo_endpoint, settings.data_dir)
    yield dynamo_endpoint, settings, source, runner
    runner.close()


def preload(source: Source, n: int) -> None:
    source.batch_write(BUSINESSES, [{"business_id": {"S": f"b{i:05d}"}, "name": {"S": "pre"},
                                     "_version": {"N": "1"}} for i in range(n)])


@pytest.mark.slow
def test_kill_9_mid_batch(setup):
    """60 kill -9s at random points (boot, full sync, mid-batch) under live writes: every restart finds an
    intact cache equal to the stream up to its checkpoint, no _version regressed; at the end cache == DynamoDB.
    (~40 s: the biggest test of this suite.)"""
    endpoint, settings, source, runner = setup
    preload(source, 100)
    stream = StreamLog(endpoint)
    writer = Writer(endpoint, 400, 10)
    writer.start()
    rng = random.Random(11)
    seen: dict[str, int] = {}
    exact_checks = shadow_kills = 0
    checkpointed = False  # a full sync completed once: every later kill finds a checkpoint to check against
    try:
        for i in range(60):
            resync = i % 5 == 4
            done_before = full_syncs_done(settings.data_dir)
            pid = runner.start(resync=resync)
            if resync:
                # A random sleep hits the short shadow window only by luck; aim for it instead. A machine fast
                # enough to finish the resync between two looks finds it done instead of waiting in vain.
                wait_for(lambda before=done_before: shadow_present(settings.cache_path)
                         or full_syncs_done(settings.data_dir) > before, 10, "the resync's shadow table")
                time.sleep(rng.uniform(0, 0.03))
            else:
                if not checkpointed and i >= FREE_KILLS:
                    # A slow machine may need longer than any random sleep below for the first full sync; had
                    # every kill landed in it, there would be no checkpoint and no exact check at all.
                    wait_for(lambda: (settings.data_dir / "booted").exists(), 60, "the first full sync")
                time.sleep(rng.uniform(0.02, 0.9))
            status = runner.kill(pid)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            integrity, rows, seq, shadow = cache_state(settings.cache_path)
            assert integrity == "ok"
            for k, v in rows.items():
                assert v >= seen.get(k, 0), f"kill {i}: {k} regressed from {seen[k]} to {v}"
                seen[k] = v
            if seq is not None:
                checkpointed = True
                stream.update()
                expected = stream.state_at(int(seq))
                assert rows == expected, f"kill {i}: cache differs from the stream at its checkpoint {seq}"
                exact_checks += 1
            shadow_kills += shadow
        writer.halt.set()
        writer.join()
        pid = runner.start()
        final = dynamo_state(endpoint)
        wait_for(lambda: cache_state(settings.cache_path)[1] == final, 30, "cache == DynamoDB after the kills")
        status = runner.kill(pid, signal.SIGTERM)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        writer.halt.set()
    print("exact checks", exact_checks, "kills during a full sync", shadow_kills)
    assert exact_checks >= 40 and shadow_kills >= 3, (exact_checks, shadow_kills)


def test_kill_9_during_full_sync(setup):
    """kill -9 while a resync fills the shadow: readers keep the previous complete table and checkpoint;
    the next start finishes the job and the cache equals DynamoDB."""
    endpoint, settings, source, runner = setup
    preload(source, 1500)
    pid = runner.start()
    wait_for(lambda: (settings.data_dir / "booted").exists(), 60, "boot")
    runner.kill(pid, signal.SIGTERM)
    _, before, seq_before, _ = cache_state(settings.cache_path)
    assert len(before) == 1500
    source.batch_write(BUSINESSES, [{"business_id": {"S": f"n{i:05d}"}, "name": {"S": "new"},
                                     "_version": {"N": "1"}} for i in range(50)])
    pid = runner.start(resync=True)

    def shadow_rows() -> int:
        conn = sqlite3.connect(f"file:{settings.cache_path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute("SELECT count(*) FROM _shadow_businesses").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    wait_for(lambda: shadow_rows() >= 200, 30, "the resync to be half-way")
    runner.kill(pid)
    integrity, rows, seq, shadow = cache_state(settings.cache_path)
    assert integrity == "ok" and shadow
    # the live table is the previous complete one, plus at most the 50 new records streamed meanwhile
    assert all(rows.get(k) == v for k, v in before.items()) and len(rows) in (1500, 1550)
    assert seq == seq_before or (seq is not None and (seq_before is None or int(seq) > int(seq_before)))
    pid = runner.start()
    final = dynamo_state(endpoint)
    wait_for(lambda: cache_state(settings.cache_path)[1] == final, 30, "cache == DynamoDB")
    assert not cache_state(settings.cache_path)[3]
    runner.kill(pid, signal.SIGTERM)
