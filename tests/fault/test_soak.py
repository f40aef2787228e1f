"""The fault soak: the real daemon behind a fault proxy, a writer process, and signals at random.

SEO_SYNC_SOAK_SECONDS sets the chaos phase (default 90 s, about 2 minutes in all, in the default run; `make soak` runs
30 minutes). At the end the cache must equal DynamoDB (`seo-sync verify`), pass integrity_check,
and a reader that polled throughout must never have seen a `_version` go down.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.harness import REPO, Daemon, seed, wait_until
from tests.support.proxy import FaultProxy

SOAK_SECONDS = float(os.environ.get("SEO_SYNC_SOAK_SECONDS", "90"))


class VersionWatcher(threading.Thread):
    """Polls the cache read-only and records any `_version` that went down for a key."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.seen: dict[tuple[str, str], int] = {}
        self.regressions: list[str] = []
        self.polls = 0

    def run(self) -> None:
        """Poll until stopped."""
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None, timeout=5)
                conn.execute("BEGIN")
                rows = [("b", r[0], r[1]) for r in conn.execute("SELECT business_id, _version FROM businesses")]
                rows += [("k", r[0], r[1]) for r in conn.execute("SELECT keyword_id, _version FROM keywords")]
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
                continue
            self.polls += 1
            for t, key, version in rows:
                if version is None:
                    continue
                previous = self.seen.get((t, key))
                if previous is not None and version < previous:
                    self.regressions.append(f"{t}:{key} {previous} -> {version}")
                self.seen[(t, key)] = max(version, previous or 0)
            time.sleep(0.05)


def _verify(endpoint: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEO_SYNC_")}
    env["SEO_SYNC_AWS__ENDPOINT_URL"] = endpoint
    return subprocess.run([sys.executable, "-m", "seo_sync", "--data-dir", str(data_dir), "--json", "verify"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 300)
def test_fault_soak_cache_equals_dynamodb_and_never_regresses(dynamo_endpoint, tmp_path):
    """Faults, HUPs, TERM and kill -9 restarts while a writer writes: verify identical, no regression."""
    seed(dynamo_endpoint, tmp_path / "seed", businesses=10)
    data_dir = tmp_path / "data"
    rng = random.Random(int(os.environ.get("SEO_SYNC_SOAK_SEED", "5")))
    actions = {"sighup": 0, "sigterm_restart": 0, "kill9_restart": 0, "latency": 0, "reset": 0, "blackhole": 0}
    env = {"SEO_SYNC_SERVICE__BOOT_READY_TIMEOUT": "10"}
    with FaultProxy(dynamo_endpoint) as proxy:
        daemon = Daemon(proxy.endpoint, data_dir, extra_env=env)
        watcher: VersionWatcher | None = None
        writer_out = tmp_path / "writer.json"
        writer = subprocess.Popen([sys.executable, "-m", "tests.support.soak_writer", dynamo_endpoint,
                                   str(SOAK_SECONDS), "15", str(writer_out)], cwd=REPO)
        try:
            daemon.wait_ready(60)
            watcher = VersionWatcher(data_dir / "cache.db")
            watcher.start()
            end = time.monotonic() + SOAK_SECONDS
            while time.monotonic() < end:
                time.sleep(rng.uniform(3, 8))
                action = rng.choice(list(actions))
                actions[action] += 1
                if action == "sighup":
                    daemon.signal(signal.SIGHUP)
                elif action in ("sigterm_restart", "kill9_restart"):
                    daemon.signal(signal.SIGTERM if action == "sigterm_restart" else signal.SIGKILL)
                    code = daemon.wait_exit(30)
                    assert code == (0 if action == "sigterm_restart" else -signal.SIGKILL), daemon.log()[-3000:]
                    daemon.close()
                    daemon = Daemon(proxy.endpoint, data_dir, extra_env=env)
                    daemon.wait_ready(90)
                elif action == "latency":
                    proxy.set_mode("latency", latency=0.3, jitter=0.2, duration=5)
                elif action == "reset":
                    proxy.set_mode("reset", probability=0.3, duration=5)
                else:
                    proxy.blackhole(4)
            assert writer.wait(60) == 0
            proxy.set_mode("pass")
            last: subprocess.CompletedProcess[str] | None = None

            def identical() -> bool:
                nonlocal last
                last = _verify(dynamo_endpoint, data_dir)
                return last.returncode == 0

            wait_until(identical, timeout=90, what="verify identical")
            assert daemon.proc.poll() is None, daemon.log()[-3000:]
        finally:
            if watcher is not None:
                watcher.stop.set()
                watcher.join(5)
            if writer.poll() is None:
                writer.kill()
            daemon.close()
    conn = sqlite3.connect(data_dir / "cache.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = json.loads(writer_out.read_text())
    assert watcher is not None and watcher.polls > 100
    assert watcher.regressions == []
    assert sum(counts[k] for k in ("put", "update", "soft_delete", "hard_delete")) > SOAK_SECONDS * 5
    print(f"soak: actions={actions} writer={counts} faults={proxy.faults()} polls={watcher.polls}")
