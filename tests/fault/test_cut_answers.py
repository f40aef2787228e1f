"""Answers cut inside their headers or body, against the real daemon process: nothing lost, nothing removed.

A fault proxy sits between the daemon and moto and cuts 20 % of the GetRecords, GetItem and Scan
answers (inside the headers: the body read is empty, which botocore parses as `{}`; or inside the
body) while writes flow straight to moto and refreshes and anti-entropy read under the fault. After
the fault, with no restart and no SIGHUP, the cache equals DynamoDB; no shard was recorded
finished; no row the cache held was removed (the test never deletes, so no table's row count may
ever go down); no refresh of a live key answered "absent". The second test restarts the daemon in
the middle of the fault.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.schema import TABLES
from tests.support.harness import Daemon, cache_counts, seed, wait_until
from tests.support.proxy import FaultProxy

pytestmark = pytest.mark.timeout(300)
FAULT_SECONDS = 16.0
CUT_SHARE = 0.2
OPERATIONS = "GetRecords|GetItem|Scan"
WRITES_PER_SECOND = 10.0
CONVERGE_WITHIN = 90.0  # seconds after the fault, on a loaded 2-core box; convergence is waited on, not timed
ENV = {
    # anti-entropy passes every few seconds, so its Scans and repair reads meet the fault too
    "SEO_SYNC_VERIFY__ANTI_ENTROPY_PERIOD_HOURS": "0.002",
    "SEO_SYNC_VERIFY__ANTI_ENTROPY_TICK_SECONDS": "0.3",
    "SEO_SYNC_VERIFY__ANTI_ENTROPY_ITEMS_PER_SECOND": "200",
    "SEO_SYNC_STREAM__MAX_BACKOFF": "2",
}


class Writer(threading.Thread):
    """About WRITES_PER_SECOND writes straight to moto: new keywords and new versions of businesses."""

    def __init__(self, source: Source) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.stop = threading.Event()
        self.count = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(1.0 / WRITES_PER_SECOND):
                i = self.count
                if i % 2:
                    self.source.put_item(TABLES["businesses"], codec.item_from_python(
                        {"business_id": f"biz-{i % 20:03d}", "name": f"w{i}", "_version": 100 + i}))
                else:
                    self.source.put_item(TABLES["keywords"], codec.item_from_python(
                        {"business_id": f"biz-{i % 20:03d}", "keyword_id": f"w{i}#en", "keyword": f"w{i}",
                         "language": "en"}))
                self.count += 1
        except BaseException as e:  # reported by the test, never lost with the thread
            self.error = e


class Watch(threading.Thread):
    """Reads the cache's row counts and asks `refresh` of a live key over and over while the fault runs."""

    def __init__(self, data_dir: Path, daemon: Daemon) -> None:
        super().__init__(daemon=True)
        self.data_dir = data_dir
        self.daemon_proc = daemon
        self.stop = threading.Event()
        self.removed: list[tuple[str, int, int]] = []  # (table, count before, count after)
        self.refreshes: list[dict[str, Any]] = []
        self.samples = 0

    def run(self) -> None:
        last: dict[str, int] = {}
        while not self.stop.wait(0.2):
            try:
                counts = cache_counts(self.data_dir)
            except sqlite3.Error:
                continue
            self.samples += 1
            for name, n in counts.items():
                if n < last.get(name, 0):
                    self.removed.append((name, last[name], n))
                last[name] = max(n, last.get(name, 0))
            try:
                answer = self.daemon_proc.request('refresh businesses {"business_id": "biz-003"}', timeout=10)
                self.refreshes.append(answer)
            except Exception:  # a refresh failing under the fault is fine; answering "absent" is not
                pass


def differences(source: Source, data_dir: Path) -> dict[str, int]:
    """Per table, the keys whose cache item is not DynamoDB's (missing, extra or different)."""
    out: dict[str, int] = {}
    reader = Reader.open(data_dir / "cache.db")
    try:
        for name, spec in TABLES.items():
            want = {spec.key_of_item(it): codec.item_hash(it) for page in source.scan(spec) for it in page}
            with reader.snapshot():
                got = {spec.key_of_item(it): codec.item_hash(it) for it in reader.items(spec)}
            diff = sum(1 for k in want.keys() | got.keys() if want.get(k) != got.get(k))
            if diff:
                out[name] = diff
    finally:
        reader.close()
    return out


def finished_checkpoints(data_dir: Path) -> int:
    """Checkpoints that record a shard as finished (moto never closes a shard)."""
    db = sqlite3.connect(f"file:{data_dir / 'cache.db'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM _sync_checkpoints WHERE closed = 1").fetchone()[0])
    finally:
        db.close()


def run_fault(dynamo_endpoint: str, tmp_path: Path, restart: bool) -> None:
    data_dir = tmp_path / "data"
    direct = seed(dynamo_endpoint, tmp_path / "seed")
    daemons: list[Daemon] = []
    with FaultProxy(dynamo_endpoint, seed=21) as proxy:
        try:
            daemons.append(Daemon(proxy.endpoint, data_dir, extra_env=ENV))
            daemons[-1].wait_ready(90)
            writer, watch = Writer(direct), Watch(data_dir, daemons[-1])
            writer.start()
            watch.start()
            proxy.set_mode("cut", probability=CUT_SHARE, duration=FAULT_SECONDS, match=OPERATIONS)
            if restart:
                wait_until(lambda: proxy.faults() >= 10, FAULT_SECONDS, "cuts before the restart")
                watch.stop.set()
                watch.join()
                daemons[-1].signal(signal.SIGTERM)
                assert daemons[-1].wait_exit(30) == 0
                daemons.append(Daemon(proxy.endpoint, data_dir, extra_env=ENV))
                daemons[-1].wait_ready(120)  # booted through the fault
                first_watch, watch = watch, Watch(data_dir, daemons[-1])
                watch.removed += first_watch.removed
                watch.refreshes += first_watch.refreshes
                watch.start()
            wait_until(lambda: proxy.mode == "pass", FAULT_SECONDS + 60, "the fault's end")
            writer.stop.set()
            writer.join()
            watch.stop.set()
            watch.join()
            assert writer.error is None, writer.error
            stats = proxy.stats()
            assert stats["cut_headers"] > 0 and stats["cut_body"] > 0
            daemon = daemons[-1]
            try:
                wait_until(lambda: not differences(direct, data_dir), CONVERGE_WITHIN, "the cache equal to DynamoDB")
            except AssertionError:
                left = differences(direct, data_dir)
                raise AssertionError(f"{CONVERGE_WITHIN:g} s after the fault the cache still differs from DynamoDB "
                                     f"in {left} keys ({writer.count} writes made)") from None
            log = "\n".join(d.log() for d in daemons)
            events = [json.loads(line).get("event") for line in log.splitlines() if line.startswith("{")]
            assert "shard_finished" not in events
            assert finished_checkpoints(data_dir) == 0
            assert watch.removed == []
            assert watch.samples > 10
            assert [a for a in watch.refreshes if a.get("ok") and not a.get("present")] == []
            assert daemon.proc.poll() is None
            assert "incomplete" in log  # the cuts were seen, and retried
        finally:
            for d in daemons:
                d.close()


@pytest.mark.slow
def test_cut_answers_lose_and_remove_nothing(dynamo_endpoint, tmp_path):
    """20 % of GetRecords, GetItem and Scan answers cut for a while: the cache converges, no shard finished,
    no live row removed, no refresh answers "absent", without a restart or SIGHUP."""
    run_fault(dynamo_endpoint, tmp_path, restart=False)


@pytest.mark.slow
def test_cut_answers_with_a_restart_during_the_fault(dynamo_endpoint, tmp_path):
    """The same, with the daemon stopped and started again (booting through the cuts) in the middle."""
    run_fault(dynamo_endpoint, tmp_path, restart=True)

