"""Part 3: replication lag, write acknowledged by DynamoDB -> row visible to a cache reader.

Measured twice in the same benchmark run with the same writer and reader processes: once with
`seo-sync run` streaming, once with a plain poller that polls every shard and sleeps 1 s. The
60-second run is cut into three equal windows; each figure is the median of the three windows'
percentiles (with min and max), and the overall percentiles over every sample are reported too.
"""

from __future__ import annotations

import bisect
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench.common import PartResult, Target
from tests.bench.lagproc import UPDATED, fresh_marks, look
from tests.bench.motoproc import REPO_ROOT
from tests.bench.stats import Summary, lag_percentiles, summarize

DRAIN_SECONDS = 3.0


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # the child owns it from here
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.lagproc", *args], stdout=out, stderr=out,
                            env=env, cwd=str(REPO_ROOT))
    out.close()
    return proc


def _wait(proc: subprocess.Popen[bytes], timeout: float, what: str, log: Path) -> None:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"{what} did not finish within {timeout:.0f}s") from None
    if code != 0:
        tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
        raise RuntimeError(f"{what} exited with {code}: {tail}")


def measure(endpoint: str, cache_db: Path, work: Path, *, rate: float, seconds: float, first: int,
            seed: bool, reader_interval: float = 0.002, drain: float = DRAIN_SECONDS,
            while_writing: Callable[[subprocess.Popen[bytes], Path], None] | None = None) -> dict[str, Any]:
    """Run the reader and the writer against whatever keeps `cache_db` in step; returns raw results.

    `while_writing(writer, started_file)` runs on this thread once the writer is spawned (the file
    appears when its first write is acknowledged): the resync part disturbs the daemon from there.
    """
    work.mkdir(parents=True, exist_ok=True)
    stop_file = work / "reader.stop"
    stop_file.unlink(missing_ok=True)
    reader_out, writer_out, log = work / "reader.json", work / "writer.json", work / "lagproc.log"
    reader = _spawn(["reader", "--db", str(cache_db), "--seconds", str(seconds + 120), "--interval",
                     str(reader_interval), "--stop-file", str(stop_file), "--out", str(reader_out)], log)
    try:
        started_file = work / "writer.started"
        started_file.unlink(missing_ok=True)
        writer_args = ["writer", "--endpoint", endpoint, "--rate", str(rate), "--seconds", str(seconds),
                       "--first", str(first), "--out", str(writer_out), "--started", str(started_file)]
        writer = _spawn([*writer_args, "--seed"] if seed else writer_args, log)
        if while_writing is not None:
            while_writing(writer, started_file)
        _wait(writer, seconds + 120, "the lag writer", log)
        # Up to `drain` seconds for the last writes to become visible, and not longer than that takes:
        # the reader looks once more after the stop file appears, so it sees whatever is visible now.
        done = json.loads(writer_out.read_text())["writes"]
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and not all_visible(cache_db, done):
            time.sleep(0.02)
    finally:
        stop_file.write_text("stop")
        _wait(reader, 30, "the lag reader", log)
    writes = json.loads(writer_out.read_text())
    seen = json.loads(reader_out.read_text())
    return {"writes": writes["writes"], "start": writes["start"], "end": writes["end"], "seen": seen["seen"],
            "reader_polls": seen["polls"]}


def all_visible(cache_db: Path, writes: list[list[Any]]) -> bool:
    """True once a read-only look at `cache_db` shows every write (n, table, sent, ack), as the reader sees it."""
    marks, keys = fresh_marks()
    try:
        conn = sqlite3.connect(f"file:{cache_db}?mode=ro", uri=True)
        try:
            shown = set(look(conn, marks, keys))
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or a table mid-swap: not visible yet
        return False
    return all(marks[table] >= n if table in UPDATED else (table, n) in shown for n, table, _sent, _ack in writes)


def lags(raw: dict[str, Any]) -> tuple[list[tuple[float, float]], int]:
    """(ack time, lag ms) for every write that became visible, and how many never did."""
    updated: dict[str, tuple[list[int], list[float]]] = {t: ([], []) for t in UPDATED}
    inserted: dict[tuple[str, int], float] = {}
    for table, n, t in raw["seen"]:
        if table in updated:
            updated[table][0].append(n)
            updated[table][1].append(t)
        else:
            inserted.setdefault((table, n), t)
    out, missing = [], 0
    for n, table, _sent, ack in raw["writes"]:
        if table in updated:
            marks, times = updated[table]
            i = bisect.bisect_left(marks, n)  # the first look at a mark >= n: n (or newer) was visible
            t = times[i] if i < len(marks) else None
        else:
            t = inserted.get((table, n))
        if t is None:
            missing += 1
        else:
            out.append((ack, (t - ack) * 1000.0))
    return out, missing


def window_percentiles(samples: list[tuple[float, float]], start: float, seconds: float,
                       windows: int = 3) -> list[dict[str, float]]:
    """Percentiles of the lags of writes acknowledged in each of `windows` equal slices of the run."""
    out = []
    width = seconds / windows
    for w in range(windows):
        lo, hi = start + w * width, start + (w + 1) * width
        values = [lag for ack, lag in samples if lo <= ack < hi or (w == windows - 1 and ack >= hi)]
        if values:
            out.append(lag_percentiles(values))
    return out


def summarize_run(name: str, raw: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Per-window and overall percentiles of one measured run."""
    samples, missing = lags(raw)
    per_window = window_percentiles(samples, raw["start"], seconds)
    overall = lag_percentiles([lag for _, lag in samples])
    return {
        "name": name, "writes": len(raw["writes"]), "visible": len(samples), "never_visible": missing,
        "achieved_rate": len(raw["writes"]) / max(1e-9, raw["end"] - raw["start"]),
        "windows": per_window, "overall": overall,
        "summary": {p: summarize([w[p] for w in per_window]).as_dict() for p in ("p50", "p95", "p99", "max")}
        if per_window else {},
        "lags_ms": [round(lag, 3) for _, lag in samples],
    }


def run_poller_baseline(endpoint: str, work: Path, *, rate: float, seconds: float, first: int,
                        interval: float = 1.0, counts: Callable[[], dict[str, int]] | None = None,
                        drain: float = DRAIN_SECONDS) -> dict[str, Any]:
    """The plain poller (poll every shard, sleep `interval`) under the same writer and reader."""
    work.mkdir(parents=True, exist_ok=True)
    ready, out, log = work / "poller.ready", work / "poller.json", work / "poller.log"
    db = work / "poller-cache" / "cache.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    ready.unlink(missing_ok=True)
    poller = _spawn(["poller", "--endpoint", endpoint, "--db", str(db), "--interval", str(interval),
                     "--seconds", str(seconds + drain + 60), "--ready", str(ready), "--out", str(out)], log)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if poller.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the poller did not start: {log.read_text(errors='replace')[-600:]}")
            time.sleep(0.05)
        before = counts() if counts else {}
        raw = measure(endpoint, db, work, rate=rate, seconds=seconds, first=first, seed=True, drain=drain)
        after = counts() if counts else {}
    finally:
        if poller.poll() is None:
            poller.terminate()  # our own child, by its pid
            poller.wait(10)
    raw["calls"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return raw


def lag_part(daemon_raw: dict[str, Any] | None, poller_raw: dict[str, Any] | None, seconds: float,
             rate: float, reader_interval: float, kinesis_raw: dict[str, Any] | None = None,
             efo_raw: dict[str, Any] | None = None, front_tail: float = 0.01) -> PartResult:
    """The lag figures of the runs side by side, with the targets on the DynamoDB Streams daemon's."""
    part = PartResult("lag", "3. Replication lag")
    runs = {}
    for name, raw in (("seo-sync run", daemon_raw), ("plain poller, 1 s sleep", poller_raw),
                      ("seo-sync run on Kinesis (polling, through the relay)", kinesis_raw),
                      ("seo-sync run on Kinesis (EFO, fake: through the relay and the EFO front)", efo_raw)):
        if raw is None:
            continue
        run = summarize_run(name, raw, seconds)
        runs[name] = run
        for p in ("p50", "p95", "p99", "max"):
            if run["summary"]:
                part.add(f"{name}: {p}", Summary(**run["summary"][p]), "ms")
        part.notes.append(
            f"{name}: {run['writes']} writes at {run['achieved_rate']:.1f}/s, {run['visible']} seen by the reader, "
            f"{run['never_visible']} not visible within {DRAIN_SECONDS:.0f} s after the last write; over all "
            f"samples p50 {run['overall']['p50']:.0f} ms, p95 {run['overall']['p95']:.0f} ms, "
            f"p99 {run['overall']['p99']:.0f} ms, max {run['overall']['max']:.0f} ms."
            + (f" Calls seen by moto meanwhile: {raw['calls']}." if raw.get("calls") else ""))
    if "seo-sync run" in runs and runs["seo-sync run"]["summary"]:
        s = runs["seo-sync run"]["summary"]
        part.targets.append(Target("lag p50", s["p50"]["median"], "<=", 150, "ms"))
        part.targets.append(Target("lag p99", s["p99"]["median"], "<=", 500, "ms"))
        if runs["seo-sync run"]["never_visible"]:
            part.targets.append(Target("writes never visible", runs["seo-sync run"]["never_visible"], "<=", 0, ""))
    part.notes.append(
        f"Writer: one process, plain boto3 UpdateItem (30%) and PutItem (70%) on one business across the five "
        f"tables at {rate:g}/s for {seconds:g} s, lag counted from the moment DynamoDB acknowledged the write. "
        f"Reader: one process polling the cache read-only every {reader_interval * 1000:g} ms (PRAGMA data_version "
        f"first) and time-stamping each change when it first becomes visible. Figures: median over three "
        f"{seconds / 3:g}-second windows (min and max across the windows). The poller polls every shard once, "
        "applies through the same Cache.apply_batch, then sleeps 1 s.")
    if kinesis_raw is not None or efo_raw is not None:
        part.notes.append(
            "The Kinesis runs (one stream each, filled by the relay from moto's DynamoDB Streams every 50 ms) are "
            "measured after 5 s of the same writer, not counted: a Kinesis host streams a few seconds after READY. "
            f"The EFO run reads through tests/support/efo_front.py, which tails moto's shard every "
            f"{front_tail * 1000:g} ms, and at once when the relay's PutRecords pass through it, and pushes what it "
            "reads: a fake of the push, with a hop AWS does not have. "
            "The daemon's own GetRecords and subscription figures are in its status: see the EFO run's note.")
    part.raw = runs
    if daemon_raw is not None and "change_log" in daemon_raw:
        entries, size = daemon_raw["change_log"]
        part.add("seo-sync run: change log entries after the run", summarize([entries]), "entries")
        part.add("seo-sync run: change log size after the run", summarize([size / 1024]), "KiB")
        part.notes.append(
            f"The change log after the run holds {entries:,} entries in {size / 1024:,.0f} KiB "
            f"({size / max(1, entries):.0f} B an entry, with the boot's reloads); at {rate:g} writes/s the "
            f"default retention (24 h, at most 1,000,000 entries) is reached by rows after "
            f"{1_000_000 / rate / 3600:.1f} h: about "
            f"{1_000_000 * size / max(1, entries) / 2**20:,.0f} MiB.")
    return part
