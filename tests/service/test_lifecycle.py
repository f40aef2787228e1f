"""The real daemon process: READY, streaming, signals, second instance, stop."""

from __future__ import annotations

import signal
import sqlite3
import threading

from seo_sync import codec
from seo_sync.control.client import request
from seo_sync.errors import ExitCode
from seo_sync.schema import TABLES
from tests.support.harness import cache_counts, wait_until

EXPECTED = {"businesses": 20, "questionnaires": 20, "keywords": 100, "service_areas": 20, "prompt_templates": 20}


def test_ready_arrives_only_after_the_cache_holds_every_item(seeded, start_daemon):
    """At READY=1 the cache already holds every item of every table."""
    d = start_daemon()
    d.wait_ready()
    assert cache_counts(d.data_dir) == EXPECTED
    assert d.status()["state"] in ("streaming", "syncing")


def test_boto3_writes_soft_and_hard_deletes_reach_the_cache(seeded, start_daemon):
    """A put, a soft delete and a hard delete made by plain boto3 all show up in the cache."""
    d = start_daemon()
    d.wait_ready()
    biz = TABLES["businesses"]
    seeded.put_item(biz, codec.item_from_python({"business_id": "fresh", "name": "Fresh", "_version": 1}))
    seeded.put_item(biz, codec.item_from_python({"business_id": "biz-001", "name": "B1", "_version": 2,
                                                 "_deleted": True}))
    seeded.ddb.delete_item(TableName="seo_businesses", Key={"business_id": {"S": "biz-002"}})
    conn = sqlite3.connect(f"file:{d.data_dir / 'cache.db'}?mode=ro", uri=True)

    def ids() -> set[str]:
        return {r[0] for r in conn.execute("SELECT business_id FROM businesses")}

    wait_until(lambda: "fresh" in ids() and "biz-001" not in ids() and "biz-002" not in ids(), what="changes")
    assert len(ids()) == 19


def test_sighup_resyncs_while_a_reader_never_sees_a_half_table(seeded, start_daemon):
    """SIGHUP runs a full sync of every table (visible in status); a polling reader never sees fewer rows."""
    d = start_daemon()
    d.wait_ready()
    before = d.status()["tables"]["keywords"]["last_full_sync"]
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        conn = sqlite3.connect(f"file:{d.data_dir / 'cache.db'}?mode=ro", uri=True)
        while not stop.is_set():
            seen.append(conn.execute("SELECT count(*) FROM keywords").fetchone()[0])

    t = threading.Thread(target=reader)
    t.start()
    try:
        d.signal(signal.SIGHUP)
        wait_until(lambda: (d.status()["tables"]["keywords"]["last_full_sync"] or 0) > (before or 0)
                   and d.status()["state"] == "streaming", what="resync after SIGHUP")
    finally:
        stop.set()
        t.join(5)
    assert seen and min(seen) == 100


def test_sigterm_mid_batch_exits_zero_and_loses_nothing(seeded, start_daemon):
    """SIGTERM while writes stream in: exit 0 within 20 s; after a restart every write is in the cache."""
    d = start_daemon()
    d.wait_ready()
    kw = TABLES["keywords"]
    items = [codec.item_from_python({"business_id": "biz-003", "keyword_id": f"load{i}#en", "keyword": str(i)})
             for i in range(300)]
    signalled = threading.Event()

    def write() -> None:
        seeded.batch_write(kw, items[:150])
        signalled.wait(30)
        seeded.batch_write(kw, items[150:])

    writer = threading.Thread(target=write)
    writer.start()
    # SIGTERM once the daemon is applying these writes, with more still to come: by construction, not by
    # a fixed sleep that a fast machine outruns (all written and applied) or a slow one undershoots.
    try:
        wait_until(lambda: cache_counts(d.data_dir)["keywords"] > 100, what="the daemon applying the writes")
        d.signal(signal.SIGTERM)
    finally:
        signalled.set()
    assert d.wait_exit(20) == 0
    writer.join(30)
    d.notify.wait_for("STOPPING=1", 5)  # the collector thread may record it just after the exit
    d2 = start_daemon()
    d2.wait_ready()
    wait_until(lambda: cache_counts(d2.data_dir)["keywords"] == 400, what="all 300 writes in the cache")


def test_second_instance_exits_at_once_with_a_clear_message(seeded, start_daemon):
    """A second daemon on the same cache exits 75 naming the holder's pid."""
    d = start_daemon()
    d.wait_ready()
    d2 = start_daemon(data_dir=d.data_dir)
    assert d2.wait_exit(20) == ExitCode.TEMPFAIL
    assert f"pid {d.pid}" in d2.log() and "locked" in d2.log()
    assert d.proc.poll() is None


def test_sighup_storm_is_coalesced(seeded, start_daemon):
    """1000 SIGHUPs in a burst give at most one running and one pending resync per table."""
    d = start_daemon()
    d.wait_ready()
    before = {name: t["last_full_sync"] for name, t in d.status()["tables"].items()}
    for _ in range(1000):
        d.signal(signal.SIGHUP)

    def resynced_and_streaming() -> bool:
        # "streaming" alone can be read before the main loop has even taken the first SIGHUP.
        status = d.status()
        tables = status["tables"]
        return status["state"] == "streaming" and all(
            t["state"] == "streaming" and t["last_full_sync"] != before[name] for name, t in tables.items())

    wait_until(resynced_and_streaming, timeout=60, what="storm resyncs finished")
    done = d.log().count('"full_sync_done"') - 5  # five at boot
    assert 5 <= done <= 10, done
    assert d.proc.poll() is None


def test_health_and_status_answer_while_a_full_sync_runs(seeded, start_daemon):
    """The socket answers health and status during a resync; `health` says ok once streaming."""
    d = start_daemon()
    d.wait_ready()
    d.signal(signal.SIGHUP)
    answers = [d.request("health") for _ in range(20)]
    assert all("ok" in a for a in answers)
    wait_until(lambda: d.request("health")["ok"] is True, what="healthy after resync")
    metrics = request(d.socket_path, "metrics")
    assert "seo_sync" in metrics
