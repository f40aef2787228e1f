"""The live demo: the real daemon as a child process on the embedded DynamoDB, a simulated writer
making edits, new keywords and soft deletes every few seconds, and the daemon's status shown live.

The demo is an honest client of the daemon: it only talks to it through the status socket and
watches the cache read-only, exactly as an operator and the generation server would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from seo_sync.aws.tables import Source
from seo_sync.config import Settings
from seo_sync.control.client import request_json
from seo_sync.demo.embedded import fake_credentials_env, load_sample_into
from seo_sync.demo.view import DemoView
from seo_sync.demo.writer import SimulatedWriter, WriterStats
from seo_sync.errors import DaemonUnavailable, SeoSyncError
from seo_sync.schema import TABLES

WRITE_EVERY = 2.0  # seconds between simulated platform writes
REFRESH_EVERY = 0.5
SETTLE_TIMEOUT = 30.0  # seconds a timed demo waits for the daemon to apply the last write
STOP_TIMEOUT = 30.0  # seconds the daemon gets to stop after SIGTERM before it is killed


def start_daemon(settings: Settings, endpoint: str, log_path: Path) -> subprocess.Popen[bytes]:
    """`seo-sync run` as a child process pointed at the embedded DynamoDB, in a session of its own.

    Its own session keeps it out of the terminal's process group: Ctrl-C reaches only the demo,
    which then sends the daemon one SIGTERM. In the terminal's group the daemon would get the
    terminal's SIGINT and then the demo's SIGTERM, and take that second signal as "stop at once"
    (exit 70).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "AWS_", "NOTIFY_SOCKET"))}
    env.update(fake_credentials_env())
    env.update({"SEO_SYNC_AWS__ENDPOINT_URL": endpoint, "SEO_SYNC_LOG_FORMAT": "json"})
    args = [sys.executable, "-m", "seo_sync", "--data-dir", str(settings.data_dir),
            "--socket", str(settings.socket_path), "--table-prefix", settings.table_prefix, "run"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_daemon(proc: subprocess.Popen[bytes]) -> int:
    """Send the daemon one SIGTERM and wait for it; its exit code.

    A further Ctrl-C while it stops does not interrupt the wait: the daemon is committing its last
    batch and closing the cache, and a second signal would make it stop at once instead.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while proc.poll() is None:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except KeyboardInterrupt:
            continue
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def _poll_status(settings: Settings) -> dict[str, Any] | None:
    """The daemon's status answer, or None while its socket does not answer."""
    try:
        return request_json(settings.socket_path, "status", timeout=2.0)
    except DaemonUnavailable:
        return None


def _settled(status: dict[str, Any] | None, loaded: dict[str, int], stats: WriterStats) -> bool:
    """True when the daemon's cache holds every keyword the writer added and none it soft-deleted."""
    rows = (((status or {}).get("tables") or {}).get("keywords") or {}).get("rows")
    return rows == loaded.get("keywords", 0) + stats.new_keywords - stats.soft_deletes


def wait_until_settled(settings: Settings, loaded: dict[str, int], stats: WriterStats,
                       status: dict[str, Any] | None) -> dict[str, Any] | None:
    """Before a timed demo stops the daemon: its last status once the writer's changes are applied.

    A slow machine may still be applying the last write when the time is up; the summary would then
    understate what the daemon does. Gives up after SETTLE_TIMEOUT (the summary shows what it has).
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not _settled(status, loaded, stats) and time.monotonic() < deadline:
        time.sleep(REFRESH_EVERY)
        status = _poll_status(settings) or status
    return status


def run_live_demo(settings: Settings, endpoint: str, view: DemoView, seconds: float | None = None,
                  writer: bool = True) -> dict[str, Any]:
    """Load the sample data, run the daemon, write and watch until Ctrl-C (or `seconds`); a summary.

    `writer=False` leaves the data to whoever else writes to the demo's DynamoDB.

    Ctrl-C (KeyboardInterrupt) at any moment ends in the same summary: the daemon gets its one
    SIGTERM and the summary says what it did.
    """
    log_path = settings.data_dir / "demo-daemon.log"
    writer_stats = WriterStats()
    loaded: dict[str, int] = {}
    status: dict[str, Any] | None = None
    proc: subprocess.Popen[bytes] | None = None
    interrupted = False
    began = time.monotonic()
    try:
        source = Source(settings.aws, settings.table_prefix)
        for spec in TABLES.values():
            source.create_table(spec)
        loaded = load_sample_into(source)
        proc = start_daemon(settings, endpoint, log_path)
        simulated = SimulatedWriter(source)
        writer_stats = simulated.stats
        started = time.monotonic()
        next_write = started + WRITE_EVERY
        with view:
            while seconds is None or time.monotonic() - started < seconds:
                if proc.poll() is not None:
                    raise SeoSyncError(f"the daemon exited with code {proc.returncode}",
                                       hint=f"see {log_path}")
                status = _poll_status(settings) or status
                quiet = seconds is not None and time.monotonic() - started > seconds - 3  # let the last write land
                if writer and status and status.get("ready") and time.monotonic() >= next_write and not quiet:
                    simulated.step()
                    next_write = time.monotonic() + WRITE_EVERY
                view.update(status, simulated.stats, time.monotonic() - started)
                time.sleep(REFRESH_EVERY)
            if seconds is not None:
                status = wait_until_settled(settings, loaded, simulated.stats, status)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        code = stop_daemon(proc) if proc is not None else None
    return {"endpoint": endpoint, "cache": str(settings.cache_path), "loaded": loaded, "interrupted": interrupted,
            "daemon_exit_code": code, "daemon_log": str(log_path), "final_status": status,
            "seconds": round(time.monotonic() - began, 1),
            "writer": {"edits": writer_stats.edits, "new_keywords": writer_stats.new_keywords,
                       "soft_deletes": writer_stats.soft_deletes, "conflicts": writer_stats.conflicts,
                       "recent": writer_stats.log[-3:]}}
