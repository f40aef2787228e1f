"""The live demo: the real daemon as a child process on the embedded DynamoDB, a simulated writer
making edits, new keywords and soft deletes every few seconds, and the daemon's status shown live.

The demo is an honest client of the daemon: it only talks to it through the status socket and
watches the cache read-only, exactly as an operator and the generation server would.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.config import Settings
from seo_sync.control.client import request_json
from seo_sync.demo.embedded import fake_credentials_env, load_sample_into
from seo_sync.errors import DaemonUnavailable, SeoSyncError, VersionMismatch
from seo_sync.schema import TABLES

WRITE_EVERY = 2.0  # seconds between simulated platform writes
REFRESH_EVERY = 0.5
SETTLE_TIMEOUT = 30.0  # seconds a timed demo waits for the daemon to apply the last write


@dataclass
class WriterStats:
    """What the simulated writer did."""

    edits: int = 0
    new_keywords: int = 0
    soft_deletes: int = 0
    conflicts: int = 0
    log: list[str] = field(default_factory=list)


class SimulatedWriter:
    """Plays the platform: versioned edits, new keywords, soft deletes, straight to DynamoDB."""

    def __init__(self, source: Source, seed: int = 7) -> None:
        self.source = source
        self.rng = random.Random(seed)
        self.stats = WriterStats()
        self._counter = 0

    def step(self) -> None:
        """One write, chosen at random."""
        self._counter += 1
        action = self.rng.choice(("edit", "edit", "keyword", "keyword", "soft_delete"))
        try:
            getattr(self, f"_{action}")()
        except VersionMismatch:
            self.stats.conflicts += 1

    def _pick(self, table: str) -> codec.Item | None:
        items = [it for page in self.source.scan(TABLES[table], page_limit=200) for it in page
                 if not codec.is_deleted(it)]
        return self.rng.choice(items) if items else None

    def _edit(self) -> None:
        spec = TABLES["businesses"]
        item = self._pick("businesses")
        if item is None:
            return
        version = codec.version_of(item) or 0
        updated = {**item, "_version": {"N": str(version + 1)},
                   "updated_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                   "phone": {"S": f"+1-555-{self.rng.randint(1000, 9999)}"}}
        self.source.put_item(spec, updated, expected_version=version)
        self.stats.edits += 1
        self.stats.log.append(f"edit {item['business_id']['S']} -> v{version + 1}")

    def _keyword(self) -> None:
        business = self._pick("businesses")
        if business is None:
            return
        lang = self.rng.choice(("en", "es"))
        slug = f"demo-keyword-{self._counter}"
        item = codec.item_from_python({
            "business_id": business["business_id"]["S"], "keyword_id": f"{slug}#{lang}", "slug": slug,
            "keyword": slug.replace("-", " "), "language": lang, "search_intent": "commercial", "_version": 1,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.source.put_item(TABLES["keywords"], item, expected_version=None)
        self.stats.new_keywords += 1
        self.stats.log.append(f"new keyword {slug}#{lang}")

    def _soft_delete(self) -> None:
        item = self._pick("keywords")
        if item is None:
            return
        version = codec.version_of(item) or 0
        deleted = {**item, "_deleted": {"BOOL": True}, "_version": {"N": str(version + 1)}}
        self.source.put_item(TABLES["keywords"], deleted, expected_version=version)
        self.stats.soft_deletes += 1
        self.stats.log.append(f"soft delete {item['keyword_id']['S']}")


def start_daemon(settings: Settings, endpoint: str, log_path: Path) -> subprocess.Popen[bytes]:
    """`seo-sync run` as a child process pointed at the embedded DynamoDB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "AWS_", "NOTIFY_SOCKET"))}
    env.update(fake_credentials_env())
    env.update({"SEO_SYNC_AWS__ENDPOINT_URL": endpoint, "SEO_SYNC_LOG_FORMAT": "json"})
    args = [sys.executable, "-m", "seo_sync", "--data-dir", str(settings.data_dir),
            "--socket", str(settings.socket_path), "--table-prefix", settings.table_prefix, "run"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def status_table(status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> Table:
    """The live view: daemon state, per-table rows and lag, and what the writer did."""
    title = "seo-sync demo — Ctrl-C to stop"
    t = Table(title=title, caption=_caption(status, stats, elapsed))
    for col in ("table", "state", "rows", "applied", "lag s", "last full sync"):
        t.add_column(col)
    for name, info in ((status or {}).get("tables") or {}).items():
        last = info.get("last_full_sync")
        synced = time.strftime("%H:%M:%S", time.localtime(last)) if last else ""
        t.add_row(name, str(info.get("state")), str(info.get("rows")), str(info.get("records_applied")),
                  f"{info.get('lag_seconds') or 0:.3f}", synced)
    return t


def _caption(status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> str:
    state = (status or {}).get("state", "starting")
    recent = "; ".join(stats.log[-3:])
    return (f"daemon: {state}   up {elapsed:.0f}s   writer: {stats.edits} edits, {stats.new_keywords} keywords, "
            f"{stats.soft_deletes} soft deletes\n{recent}")


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


def run_live_demo(settings: Settings, endpoint: str, console: Console, seconds: float | None = None) -> dict[str, Any]:
    """Load the sample data, run the daemon, write and watch until Ctrl-C (or `seconds`); a summary."""
    source = Source(settings.aws, settings.table_prefix)
    for spec in TABLES.values():
        source.create_table(spec)
    loaded = load_sample_into(source)
    log_path = settings.data_dir / "demo-daemon.log"
    proc = start_daemon(settings, endpoint, log_path)
    writer = SimulatedWriter(source)
    started = time.monotonic()
    next_write = started + WRITE_EVERY
    status: dict[str, Any] | None = None
    try:
        with Live(status_table(None, writer.stats, 0), console=console, refresh_per_second=4,
                  transient=not console.is_terminal) as live:
            while seconds is None or time.monotonic() - started < seconds:
                if proc.poll() is not None:
                    raise SeoSyncError(f"the daemon exited with code {proc.returncode}",
                                       hint=f"see {log_path}")
                status = _poll_status(settings)
                quiet = seconds is not None and time.monotonic() - started > seconds - 3  # let the last write land
                if status and status.get("ready") and time.monotonic() >= next_write and not quiet:
                    writer.step()
                    next_write = time.monotonic() + WRITE_EVERY
                live.update(status_table(status, writer.stats, time.monotonic() - started))
                time.sleep(REFRESH_EVERY)
            if seconds is not None:
                status = wait_until_settled(settings, loaded, writer.stats, status)
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    return {"endpoint": endpoint, "cache": str(settings.cache_path), "loaded": loaded,
            "daemon_exit_code": proc.returncode, "daemon_log": str(log_path),
            "final_status": status, "writer": {"edits": writer.stats.edits, "new_keywords": writer.stats.new_keywords,
                                               "soft_deletes": writer.stats.soft_deletes,
                                               "conflicts": writer.stats.conflicts}}
