"""kill -9 of a process writing the cache through every logging path (stream batches, applied truths,
swaps): after every kill, each row has exactly the log entries of its writes and the log names no
write whose row is missing."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
KILLS = 15
pytestmark = pytest.mark.timeout(240)


def check(path: Path) -> int:
    """Assert rows and log agree; the number of log entries."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        held = {r[0]: r[1] for r in conn.execute("SELECT business_id, _version FROM businesses")}
        upserts: dict[str, int] = {}
        present: dict[str, bool] = {}
        for key, op in conn.execute("SELECT key, op FROM _sync_changes WHERE table_name = 'businesses' "
                                    "AND key IS NOT NULL ORDER BY seq"):
            bid = key[2:-2]
            upserts[bid] = upserts.get(bid, 0) + (op == "upsert")
            present[bid] = op == "upsert"
        # A row without its entry would hold a version above its upsert count; an entry without its row
        # a count above the version, or a key the log says is there and the table lacks (or the reverse).
        assert {k: upserts.get(k, 0) for k in held} == held
        assert {k for k, p in present.items() if p} == set(held)
        return int(conn.execute("SELECT count(*) FROM _sync_changes").fetchone()[0])
    finally:
        conn.close()


def test_kill_9_never_parts_a_row_from_its_log_entry(tmp_path):
    """Killed -9 at random moments while it writes, the cache's rows and change log always agree."""
    path = tmp_path / "cache.db"
    rng = random.Random(7)
    sizes = []
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.changelog_writer", str(path)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
        assert proc.stdout is not None
        assert "ready" in (line.strip() for line in proc.stdout), "the writer ended before its first write"
        # Kill at a random moment of its writing: wait on an event nobody sets, for a random while.
        threading.Event().wait(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sizes.append(check(path))
    # Each run commits at least one write before "ready", however slow the machine: the log grows.
    assert sizes == sorted(sizes) and sizes[-1] >= sizes[0] + KILLS - 1, f"a run wrote nothing: {sizes}"
