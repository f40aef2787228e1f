"""Runs the stream engine against a DynamoDB endpoint (moto's server) in its own process, for kill tests.

    python -m tests.support.engine_runner --endpoint URL --data-dir DIR [--tables businesses] [--resync]
        runs the engine with its own threads until SIGTERM (then stops cleanly, exit 0).
    python -m tests.support.engine_runner --endpoint URL --data-dir DIR --fork-server
        imports everything once, then serves stdin commands so a test can kill -9 hundreds of engines
        cheaply: `start [resync]` forks an engine process and prints its pid; `wait PID` reaps it and
        prints its exit status; `quit` exits.

The engine process logs to DIR/runner.log and touches DIR/booted once `boot_synced` is set.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import structlog

from seo_sync.aws.tables import Source
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.writer import Cache
from seo_sync.config import load_settings
from seo_sync.sync.engine import Engine


def run_engine(endpoint: str, data_dir: Path, tables: list[str], resync: bool) -> int:
    """Run the engine until SIGTERM; returns the exit code."""
    settings = load_settings(path=None, env={}, overrides={
        "data_dir": data_dir, "aws": {"endpoint_url": endpoint, "region": "us-east-1"},
        "stream": {"idle_poll_interval": 0.05}, "fullsync": {"batch_size": 100, "scan_segments": 2},
        "control": {"min_resync_interval": 0.0}})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = WriterLock(settings.cache_path).acquire()
    cache = Cache.open(settings.cache_path)
    engine = Engine(settings, Source(settings.aws, settings.table_prefix), cache, tables=tables)
    threads = engine.threads()
    for t in threads:
        t.start()
    if resync:
        engine.request_resync(None, reason="kill test")
    booted = data_dir / "booted"
    while not stop.wait(0.05):
        if engine.boot_synced.is_set() and not booted.exists():
            booted.touch()
    engine.stop()
    for t in threads:
        t.join(timeout=20)
    cache.close()
    lock.release()
    return 0 if not any(t.is_alive() for t in threads) else 1


def _child(endpoint: str, data_dir: Path, tables: list[str], resync: bool) -> None:
    fd = os.open(data_dir / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = 70
    try:
        code = run_engine(endpoint, data_dir, tables, resync)
    finally:
        sys.stdout.flush()
        os._exit(code)


def fork_server(endpoint: str, data_dir: Path, tables: list[str]) -> None:
    """Serve start/wait/quit commands on stdin (see the module docstring)."""
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "start":
            (data_dir / "booted").unlink(missing_ok=True)
            pid = os.fork()
            if pid == 0:
                _child(endpoint, data_dir, tables, resync="resync" in cmd[1:])
            print(pid, flush=True)
        elif cmd[0] == "wait":
            _, status = os.waitpid(int(cmd[1]), 0)
            print(status, flush=True)
        elif cmd[0] == "quit":
            return


def main() -> None:
    """Parse arguments and run."""
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--tables", default="businesses")
    p.add_argument("--resync", action="store_true")
    p.add_argument("--fork-server", action="store_true")
    a = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    a.data_dir.mkdir(parents=True, exist_ok=True)
    tables = a.tables.split(",")
    if a.fork_server:
        fork_server(a.endpoint, a.data_dir, tables)
    else:
        sys.exit(run_engine(a.endpoint, a.data_dir, tables, a.resync))


if __name__ == "__main__":
    main()
