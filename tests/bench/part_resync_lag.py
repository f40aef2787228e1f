"""Part 3b: replication lag while the written tables are being resynced.

The same writer and reader as part 3 run against the real daemon, and while the writer writes the
bench asks the daemon to rebuild its tables: SIGHUP (every table, as an operator would) or
`resync <table>` on the socket, again each time the previous request has been carried out, from
`resync_from` to `resync_until` seconds into the writing. The daemon's own log says when each
table's full sync started and swapped (`full_sync_started` / `full_sync_done`); a write whose
acknowledgement falls inside its own table's window was made while that table was being rebuilt,
and its lag is the figure the contract bounds. Writes during another table's resync and writes
while nothing resyncs are reported beside it, so the three can be compared within one run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from seo_sync.errors import SeoSyncError
from tests.bench import part_lag
from tests.bench.common import PartResult, Target
from tests.bench.daemonproc import DaemonProcess
from tests.bench.plots import lag_plot, lag_timeline_plot
from tests.bench.stats import lag_percentiles, summarize

TITLE = "3b. Replication lag while tables are resynced"
OWN, OTHER, NONE = "own table resyncing", "another table resyncing", "no resync running"
GROUPS = (OWN, OTHER, NONE)
BUSY = ("syncing", "resync_pending")


@dataclass
class ResyncDriver:
    """Keeps the daemon resyncing while the lag writer writes, and watches its status meanwhile.

    A new request goes out only once the previous one was carried out: every table it named has a
    new `last_full_sync` (its swap committed). After the writer ends, the driver waits for the
    request in flight to finish, so every window it opened is closed in the log.
    """

    daemon: DaemonProcess
    resync_from: float  # seconds after the writer's first acknowledged write
    resync_until: float
    table: str | None = None  # None: SIGHUP, every table; else `resync <table>` on the socket
    poll: float = 0.05
    finish_timeout: float = 300.0
    requests: list[float] = field(default_factory=list)  # monotonic times the requests went out
    state_samples: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> state -> count
    status_failures: int = 0

    def __call__(self, writer: subprocess.Popen[bytes], started_file: Path) -> None:
        """Run until the writer exits and the last request has been carried out."""
        while not started_file.exists() and writer.poll() is None:
            time.sleep(0.02)
        t0 = time.monotonic()
        waiting_for: dict[str, Any] | None = None  # table -> last_full_sync when the request went out
        while writer.poll() is None:
            tables = self._tables()
            if tables is not None:
                if waiting_for is not None and self._carried_out(waiting_for, tables):
                    waiting_for = None
                elapsed = time.monotonic() - t0
                if waiting_for is None and self.resync_from <= elapsed < self.resync_until:
                    waiting_for = {t: v.get("last_full_sync") for t, v in tables.items()
                                   if self.table is None or t == self.table}
                    self._request()
            time.sleep(self.poll)
        deadline = time.monotonic() + self.finish_timeout
        while waiting_for is not None and time.monotonic() < deadline:
            tables = self._tables()
            if tables is not None and self._carried_out(waiting_for, tables):
                waiting_for = None
            else:
                time.sleep(self.poll)
        if waiting_for is not None:
            raise RuntimeError(f"the last resync did not finish within {self.finish_timeout:.0f} s")

    def _tables(self) -> dict[str, dict[str, Any]] | None:
        try:
            tables = dict(self.daemon.status(timeout=5.0).get("tables", {}))
        except (SeoSyncError, OSError, ValueError):
            self.status_failures += 1
            return None
        for name, info in tables.items():
            states = self.state_samples.setdefault(name, {})
            state = str(info.get("state"))
            states[state] = states.get(state, 0) + 1
        return tables

    @staticmethod
    def _carried_out(asked: dict[str, Any], tables: dict[str, dict[str, Any]]) -> bool:
        return all(tables.get(t, {}).get("last_full_sync") != before
                   and tables.get(t, {}).get("state") not in BUSY for t, before in asked.items())

    def _request(self) -> None:
        self.requests.append(time.monotonic())
        if self.table is None:
            assert self.daemon.proc is not None
            self.daemon.proc.send_signal(signal.SIGHUP)  # our own child, by its Popen
        else:
            from seo_sync.control.client import request_json

            request_json(self.daemon.socket_path, f"resync {self.table}", timeout=5.0)


def resync_windows(log_text: str, wall_to_monotonic: float) -> list[dict[str, Any]]:
    """(table, start, end, rows, stream records, reason) of every full sync the log shows done, monotonic times.

    `wall_to_monotonic` is time.monotonic() - time.time() taken in the bench process: both clocks
    are the machine's, so the log's UTC timestamps map onto the lag samples' clock.
    """
    started: dict[str, float] = {}
    out = []
    for line in log_text.splitlines():
        if "full_sync_" not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event, table = entry.get("event"), entry.get("table")
        if event not in ("full_sync_started", "full_sync_done") or not table or "timestamp" not in entry:
            continue
        at = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00")).timestamp() + wall_to_monotonic
        if event == "full_sync_started":
            started[table] = at
        elif table in started:
            out.append({"table": table, "start": started.pop(table), "end": at, "rows": entry.get("rows"),
                        "stream_records": entry.get("stream_records"), "reason": entry.get("reason"),
                        "seconds": entry.get("seconds")})
    return out


def classify(samples: list[tuple[str, float, float]], windows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Split (table, ack, lag ms) samples by what was resyncing when the write was acknowledged."""
    groups: dict[str, list[float]] = {g: [] for g in GROUPS}
    for table, ack, lag in samples:
        inside = [w for w in windows if w["start"] <= ack <= w["end"]]
        if any(w["table"] == table for w in inside):
            groups[OWN].append(lag)
        elif inside:
            groups[OTHER].append(lag)
        else:
            groups[NONE].append(lag)
    return groups


def lag_samples(raw: dict[str, Any]) -> tuple[list[tuple[str, float, float]], int]:
    """(table, ack time, lag ms) of every write that became visible, and how many never did."""
    samples, missing = part_lag.lags(raw)
    # `lags` keeps the writes' order and drops the unseen ones; pair them back with their tables by ack time.
    table_of = {ack: table for _n, table, _sent, ack in raw["writes"]}
    return [(table_of[ack], ack, lag) for ack, lag in samples], missing


def measure(endpoint: str, daemon: DaemonProcess, work: Path, *, rate: float, seconds: float, first: int,
            seed: bool, resync_from: float, resync_until: float, table: str | None = None,
            reader_interval: float = 0.002, drain: float = part_lag.DRAIN_SECONDS,
            counts: Callable[[], dict[str, int]] | None = None) -> dict[str, Any]:
    """The lag run with resyncs driven meanwhile; raw results plus the resync windows from the log."""
    driver = ResyncDriver(daemon, resync_from, resync_until, table)
    log_offset = daemon.log_path.stat().st_size if daemon.log_path.exists() else 0
    before = counts() if counts else {}
    raw = part_lag.measure(endpoint, daemon.cache_path, work, rate=rate, seconds=seconds, first=first, seed=seed,
                           reader_interval=reader_interval, drain=drain, while_writing=driver)
    after = counts() if counts else {}
    wall_to_monotonic = time.monotonic() - time.time()
    with open(daemon.log_path, "rb") as f:
        f.seek(log_offset)
        log_text = f.read().decode("utf-8", "replace")
    raw["windows"] = resync_windows(log_text, wall_to_monotonic)
    raw["requests"] = driver.requests
    raw["state_samples"] = driver.state_samples
    raw["status_failures"] = driver.status_failures
    raw["trigger"] = f"resync {table} (socket)" if table else "SIGHUP (every table)"
    raw["calls"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return raw


def _ms(v: float) -> str:
    return f"{v:,.0f} ms"


def resync_lag_part(raw: dict[str, Any], *, rate: float, seconds: float, resync_from: float,
                    resync_until: float, out: Path | None = None) -> PartResult:
    """Figures, targets, notes and plots of one resync lag run."""
    part = PartResult("resync-lag", TITLE)
    samples, missing = lag_samples(raw)
    groups = classify(samples, raw["windows"])
    stats = {g: lag_percentiles(v) for g, v in groups.items() if v}
    for group in GROUPS:
        if group not in stats:
            continue
        for p in ("p50", "p95", "p99", "max"):
            part.add(f"{group}: lag {p}", summarize([stats[group][p]]), "ms")
    if OWN in stats:
        part.targets.append(Target("lag p50 while its table resyncs", stats[OWN]["p50"], "<=", 150, "ms"))
        part.targets.append(Target("lag p99 while its table resyncs", stats[OWN]["p99"], "<=", 500, "ms"))
    else:
        part.notes.append("WARNING: no write was acknowledged inside its own table's resync window; "
                          "the run shows nothing about lag during a resync.")
    part.targets.append(Target("writes never visible", missing, "<=", 0, ""))
    writes = len(raw["writes"])
    achieved = writes / max(1e-9, raw["end"] - raw["start"])
    per_table: dict[str, list[float]] = {}
    for w in raw["windows"]:
        per_table.setdefault(w["table"], []).append(w["end"] - w["start"])
    part.notes.append(
        f"Trigger: {raw['trigger']}, {len(raw['requests'])} requests between {resync_from:g} s and "
        f"{resync_until:g} s into the writing, each sent once the previous one was carried out. Full syncs "
        f"the daemon's log shows done during the run: "
        + ", ".join(f"{t} x{len(d)} ({min(d):.2f}..{max(d):.2f} s)" for t, d in sorted(per_table.items()))
        + ".")
    part.notes.append(
        f"{writes} writes at {achieved:.1f}/s, {len(samples)} seen by the reader, {missing} not visible within "
        f"{part_lag.DRAIN_SECONDS:.0f} s after the last write. Acknowledged while their own table was being "
        f"rebuilt (between its full_sync_started and full_sync_done in the daemon's log): {len(groups[OWN])}; "
        f"while another table was: {len(groups[OTHER])}; while none was: {len(groups[NONE])}.")
    # How long DynamoDB (moto) took to acknowledge the writes of each group: a source slowed down by
    # the resync's Scan shows here, before any of the daemon's work.
    acks = classify([(table, ack, (ack - sent) * 1000.0) for _n, table, sent, ack in raw["writes"]], raw["windows"])
    ack_stats = {g: lag_percentiles(v) for g, v in acks.items() if v}
    part.notes.append("Time from sending a write to its acknowledgement (the source's share, not in the lag): "
                      + ", ".join(f"{g}: p50 {_ms(s['p50'])}, p99 {_ms(s['p99'])}, max {_ms(s['max'])}"
                                  for g, s in ack_stats.items()) + ".")
    syncing = {t: s.get("syncing", 0) for t, s in raw["state_samples"].items() if s.get("syncing")}
    part.notes.append(
        f"Cross-check from the daemon's status (asked every ~50 ms during the writing): samples with the table "
        f"in state `syncing`: {syncing or 'none'}; {raw['status_failures']} status requests failed."
        + (f" Calls seen by moto meanwhile: {raw['calls']}." if raw.get("calls") else ""))
    part.notes.append(
        f"Writer and reader as in part 3 ({rate:g}/s for {seconds:g} s, 30% UpdateItem, 70% PutItem across the "
        f"five tables). One run: the figures are percentiles over every write of the group (min = max = median). "
        f"Overall: " + ", ".join(f"{g}: p50 {_ms(s['p50'])}, p95 {_ms(s['p95'])}, p99 {_ms(s['p99'])}, "
                                 f"max {_ms(s['max'])} ({int(s['samples'])} writes)" for g, s in stats.items())
        + ".")
    part.raw = {"groups": {g: [round(v, 3) for v in vals] for g, vals in groups.items()},
                "percentiles": stats, "ack_ms": ack_stats, "windows": raw["windows"], "requests": raw["requests"],
                "state_samples": raw["state_samples"], "trigger": raw["trigger"], "never_visible": missing,
                "writes": writes, "achieved_rate": achieved, "calls": raw.get("calls", {}),
                "timeline": [(round(ack - raw["start"], 4), table, round(lag, 3)) for table, ack, lag in samples]}
    if out is not None:
        lag_plot({g: v for g, v in groups.items() if v}, out / "bench-resync-lag.png",
                 limits=[("p50 limit 150 ms", 150.0), ("p99 limit 500 ms", 500.0)],
                 title="Replication lag while tables are resynced (ack -> visible)")
        part.images.append(("lag distribution by what was resyncing when the write was acknowledged",
                            "bench-resync-lag.png"))
        lag_timeline_plot([(ack - raw["start"], table, lag) for table, ack, lag in samples],
                          [(w["table"], w["start"] - raw["start"], w["end"] - raw["start"]) for w in raw["windows"]],
                          out / "bench-resync-lag-timeline.png", limit=500.0)
        part.images.append(("lag of every write over time, each table's resync windows shaded",
                            "bench-resync-lag-timeline.png"))
    return part
