"""Failures that need the real daemon process: a hung main loop, DynamoDB unreachable at boot, a long
reader, a foreign write lock, a corrupted cache file, and no secrets in its logs."""

from __future__ import annotations

import sqlite3
import threading
import time

from seo_sync import codec
from seo_sync.errors import DaemonUnavailable
from seo_sync.schema import TABLES
from tests.support.harness import cache_counts, wait_until


def _pings_between(d, start: float, end: float) -> int:
    return sum(1 for at, m in list(d.notify.messages) if start <= at < end and m == "WATCHDOG=1")


def test_watchdog_pings_stop_when_the_writer_is_wedged(seeded, start_daemon):
    """With WATCHDOG_USEC set, pings flow; while the writer is blocked they stop; then they resume."""
    d = start_daemon(watchdog_sec=1.0)
    d.wait_ready()
    d.notify.wait_for("WATCHDOG=1", 10)
    wedge = threading.Thread(target=lambda: d.request("debug-wedge-writer 5", timeout=20))
    wedge.start()
    # The window opens when the daemon says it withholds pings (one watchdog interval of no writer
    # progress), not at a fixed time after asking: on a loaded machine the wedge may start late.
    wait_until(lambda: "watchdog_withheld" in d.log(), timeout=10, what="pings withheld")
    window_start = time.monotonic()
    time.sleep(2.0)  # the wedge lasts 5 s from its start
    assert _pings_between(d, window_start, time.monotonic()) == 0
    wedge.join(30)
    d.notify.wait_for("WATCHDOG=1", 10, after=time.monotonic())
    assert d.proc.poll() is None


def test_main_loop_hang_stops_watchdog_pings(seeded, start_daemon):
    """A hung main loop sends no WATCHDOG=1 (systemd would SIGABRT it); the process stays alive."""
    d = start_daemon(watchdog_sec=1.0)
    d.wait_ready()
    d.notify.wait_for("WATCHDOG=1", 10)
    asked = time.monotonic()
    d.request("debug-hang 10")  # the main loop hangs until at least `asked` + 10 s, from whenever it gets to it
    # The window opens when the main loop says it is held (a ping it was about to send has gone out by
    # then), not at a fixed time after asking: on a loaded machine it may get there late.
    wait_until(lambda: '"main_loop_held"' in d.log(), timeout=8, what="the main loop held")
    window_start = time.monotonic()
    window_end = min(window_start + 3.0, asked + 9.0)  # ends before the hang can
    time.sleep(max(0.0, window_end - time.monotonic()))  # sampling an absence: no event can end it
    assert _pings_between(d, window_start, window_end) == 0
    assert d.proc.poll() is None
    d.notify.wait_for("WATCHDOG=1", 10, after=time.monotonic())


def test_dynamodb_unreachable_at_boot_with_a_cache_serves_it_degraded(seeded, start_daemon):
    """With a complete cache and DynamoDB refused: READY after boot_ready_timeout, STATUS degraded, rows kept."""
    d = start_daemon()
    d.wait_ready()
    d.close()
    d2 = start_daemon(endpoint="http://127.0.0.1:9", data_dir=d.data_dir,
                      extra_env={"SEO_SYNC_SERVICE__BOOT_READY_TIMEOUT": "2"})
    d2.wait_ready(30)
    assert d2.notify.wait_for("STATUS=degraded", 10)
    status = d2.status()
    assert status["state"] == "degraded" and status["initialized"] is True
    assert d2.request("health")["ok"] is False
    assert cache_counts(d2.data_dir)["keywords"] == 100


def test_dynamodb_unreachable_at_boot_without_a_cache_says_uninitialized(seeded, start_daemon):
    """No cache and DynamoDB refused: READY after the timeout with initialized=false and health not ok."""
    d = start_daemon(endpoint="http://127.0.0.1:9", extra_env={"SEO_SYNC_SERVICE__BOOT_READY_TIMEOUT": "2"})
    d.wait_ready(30)
    status = d.status()
    assert status["initialized"] is False and status["state"] == "degraded"
    assert any("not initialized" in r or "boot" in r for r in status["reasons"])


def test_corrupted_cache_file_is_set_aside_and_rebuilt(seeded, start_daemon):
    """Garbage in cache.db: the daemon moves it to cache.db.corrupt-* and rebuilds it by a full sync."""
    d = start_daemon()
    d.wait_ready()
    d.close()
    path = d.data_dir / "cache.db"
    with open(path, "r+b") as fh:
        fh.seek(0)
        fh.write(b"this is not a database" * 10)
    d2 = start_daemon(data_dir=d.data_dir)
    d2.wait_ready()
    assert list(d.data_dir.glob("cache.db.corrupt-*"))
    assert cache_counts(d.data_dir)["keywords"] == 100
    assert '"cache_corrupt"' in d2.log()


def test_long_reader_holding_a_snapshot_does_not_stop_writes(seeded, start_daemon):
    """A reader inside a read transaction keeps its snapshot while new writes reach other readers."""
    d = start_daemon()
    d.wait_ready()
    held = sqlite3.connect(f"file:{d.data_dir / 'cache.db'}?mode=ro", uri=True, isolation_level=None)
    held.execute("BEGIN")
    assert held.execute("SELECT count(*) FROM businesses").fetchone()[0] == 20
    for i in range(5):
        seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": f"new{i}", "_version": 1}))
    wait_until(lambda: cache_counts(d.data_dir)["businesses"] == 25, what="writes applied under a long reader")
    assert held.execute("SELECT count(*) FROM businesses").fetchone()[0] == 20
    held.execute("COMMIT")
    assert held.execute("SELECT count(*) FROM businesses").fetchone()[0] == 25


def test_another_process_holding_a_write_lock_delays_but_loses_nothing(seeded, start_daemon):
    """A foreign BEGIN EXCLUSIVE blocks applies (SQLITE_BUSY, retried); after it ends the writes land."""
    d = start_daemon(watchdog_sec=3.0, extra_env={"SEO_SYNC_SERVICE__BUSY_TIMEOUT_MS": "200"})
    d.wait_ready()
    other = sqlite3.connect(d.data_dir / "cache.db", isolation_level=None, timeout=10)
    other.execute("BEGIN EXCLUSIVE")
    for i in range(5):
        seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": f"locked{i}", "_version": 1}))
    try:
        # Hold the lock until an apply has met it (not for a fixed time a slow machine may spend before reading).
        wait_until(lambda: '"apply_failed"' in d.log(), timeout=30, what="an apply refused by the foreign lock")
    finally:
        other.execute("ROLLBACK")
        other.close()
    wait_until(lambda: cache_counts(d.data_dir)["businesses"] == 25, what="writes applied after the lock")
    assert d.proc.poll() is None
    assert d.request("health")["ok"] is True


def test_secrets_never_reach_debug_logs(seeded, start_daemon):
    """At DEBUG, with distinctive credentials, neither the key id, the secret nor the token is printed."""
    secrets = {"AWS_ACCESS_KEY_ID": "AKIAFAKESECRETID1234", "AWS_SECRET_ACCESS_KEY": "s3cr3tValueNeverLogged42",
               "AWS_SESSION_TOKEN": "tokenValueNeverLogged99"}
    d = start_daemon(extra_env=secrets, args=("-v",))
    d.wait_ready()
    seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": "dbg", "_version": 1}))
    wait_until(lambda: cache_counts(d.data_dir)["businesses"] == 21, what="write applied")
    d.request("status")
    d.close()
    text = d.log()
    assert '"level": "debug"' in text and '"event": "stopped"' in text
    for value in secrets.values():
        assert value not in text


def test_status_socket_is_gone_after_a_clean_stop(seeded, start_daemon):
    """After SIGTERM the socket file is removed and `health` reports the daemon down."""
    d = start_daemon()
    d.wait_ready()
    d.close()
    try:
        d.request("health", timeout=1)
        raise AssertionError("socket still answers")
    except DaemonUnavailable:
        pass
