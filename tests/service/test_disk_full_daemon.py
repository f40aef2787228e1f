"""Disk full under the running daemon: batches roll back, the checkpoint stays,
the daemon backs off and keeps its watchdog and socket alive, readers keep reading, and everything
lands once space returns. The data dir is a 8 MB tmpfs in the daemon's own mount namespace; the
test fills and frees it through /proc/PID/root and reads the cache with `nsenter` (SQLite resolves
the /proc/PID/root link to this namespace's path, so it cannot open the file through it)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seo_sync import codec
from seo_sync.errors import CacheError
from seo_sync.schema import TABLES
from tests.support.disk_full import unshare_works
from tests.support.harness import Daemon, wait_until


def _daemon_on_tmpfs(dynamo_endpoint: str, tmp_path: Path, **options: float) -> tuple[Daemon, Path]:
    """A daemon whose data dir is an 8 MB tmpfs of its own mount namespace (not started yet)."""
    why = unshare_works()
    if why:
        pytest.fail(f"needs unshare with a tmpfs mount: {why}")
    data_dir = tmp_path / "tmpfs"
    data_dir.mkdir()
    mount = ("unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=8m tmpfs {data_dir} && exec \"$@\"", "sh")
    return Daemon(dynamo_endpoint, data_dir, prefix=mount, **options), data_dir


def _fill(path: Path) -> int:
    written = 0
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
                written += 65536
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return written


def _query(pid: int, db: Path, sql: str) -> str:
    """Run one read-only query in the daemon's mount namespace."""
    code = ("import sqlite3, sys; c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); "
            "print(c.execute(sys.argv[2]).fetchone()[0])")
    out = subprocess.run(["nsenter", "-t", str(pid), "-m", sys.executable, "-c", code, str(db), sql],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


@pytest.mark.slow
def test_disk_full_rolls_back_backs_off_and_resumes(seeded, dynamo_endpoint, tmp_path):
    """With the cache disk full writes wait (no crash, watchdog on); after freeing space they all land."""
    d, data_dir = _daemon_on_tmpfs(dynamo_endpoint, tmp_path, watchdog_sec=3.0)
    try:
        d.wait_ready()
        inside = Path(f"/proc/{d.pid}/root") / str(data_dir).lstrip("/")
        db = data_dir / "cache.db"

        def count(table: str) -> int:
            return int(_query(d.pid, db, f"SELECT count(*) FROM {table}"))

        assert count("businesses") == 20
        _fill(inside / "filler")
        kw = TABLES["keywords"]
        # 200 x 10 KB: once space returns, what the filler held (8 MB less the cache) must hold these
        # rows twice (the WAL, then the database file it is checkpointed into), however the daemon
        # splits them into batches; 20 KB items could need more than the whole tmpfs.
        big = "x" * 10000
        seeded.batch_write(kw, [codec.item_from_python({"business_id": "full", "keyword_id": f"k{i}#en",
                                                        "keyword": big}) for i in range(200)])
        wait_until(lambda: '"apply_failed"' in d.log(), timeout=30, what="an apply that fails on a full disk")
        time.sleep(3)
        assert d.proc.poll() is None
        assert d.request("health") is not None
        assert count("businesses") == 20
        start = time.monotonic()
        time.sleep(3.5)
        assert any(at >= start and m == "WATCHDOG=1" for at, m in list(d.notify.messages))
        os.unlink(inside / "filler")
        wait_until(lambda: count("keywords") == 300, timeout=120,
                   what="all writes applied after space returned")
        # Logged right after the commit that made the rows visible: wait for it, do not race it.
        wait_until(lambda: '"apply_recovered"' in d.log(), timeout=10, what="apply_recovered logged")
        assert _query(d.pid, db, "PRAGMA quick_check") == "ok"
    finally:
        d.close()


def test_health_tells_the_truth_while_the_disk_is_full(seeded, dynamo_endpoint, tmp_path):
    """Changes that cannot be committed: health not ok naming the cause, lag grows, refresh says why; then ok."""
    d, data_dir = _daemon_on_tmpfs(dynamo_endpoint, tmp_path)
    try:
        d.wait_ready()
        inside = Path(f"/proc/{d.pid}/root") / str(data_dir).lstrip("/")
        assert d.request("health")["ok"]
        _fill(inside / "filler")
        filled = time.monotonic()
        big = "x" * 10000
        kw = TABLES["keywords"]
        seeded.batch_write(kw, [codec.item_from_python({"business_id": "full", "keyword_id": f"k{i}#en",
                                                        "keyword": big}) for i in range(100)])
        wait_until(lambda: not d.request("health")["ok"], timeout=60, what="health not ok on a full disk")
        not_ok_after = time.monotonic() - filled
        health = d.request("health")
        assert any("full" in r for r in health["reasons"]), health
        table = d.status()["tables"]["keywords"]
        assert table["commit_error"] and "full" in table["error"]
        lag = table["lag_seconds"]
        wait_until(lambda: d.status()["tables"]["keywords"]["lag_seconds"] > lag + 1, timeout=30,
                   what="the lag growing while changes wait")
        with pytest.raises(CacheError, match="cannot commit"):
            d.request('refresh keywords ["full", "k1#en"]')
        os.unlink(inside / "filler")
        freed = time.monotonic()
        wait_until(lambda: d.request("health")["ok"], timeout=60, what="health ok again after space returned")
        ok_after = time.monotonic() - freed
        assert d.status()["tables"]["keywords"]["commit_error"] is None
        print(f"disk full: health not ok {not_ok_after:.1f}s after the fill (changes arriving), "
              f"ok {ok_after:.1f}s after space was freed")
    finally:
        d.close()
