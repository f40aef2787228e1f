"""Parts 3 to 6 that need the real daemon: boot to READY, status answer time, idle cost, memory, lag.

One sequence of daemon processes serves several parts: each boot is a fresh data dir (so a full
sync of every table) timed to READY=1 while a prober times `status` answers; the last daemon is
kept running for the idle window and then the lag run. Memory at the larger size uses the
synthetic source, and the same synthetic source at the smaller size, so the two compare like
with like.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.bench.common import PartResult, Target
from tests.bench.daemonproc import DaemonProcess, StatusProber
from tests.bench.ddb import open_shards
from tests.bench.fakesource import FakeSourceProcess
from tests.bench.motoproc import MotoProcess
from tests.bench.stats import percentile, ratios, summarize

# DynamoDB Streams list price, us-east-1 on demand: $0.02 per 100,000 read request units; every
# GetRecords call is one unit. DescribeStream and GetShardIterator are not billed.
PRICE_PER_GET_RECORDS = 0.02 / 100_000
SECONDS_PER_MONTH = 730 * 3600  # AWS's billing month
FREE_TIER_UNITS = 2_500_000


def boot_runs(moto: MotoProcess, work: Path, reps: int, timeout: float, items: int,
              keep_last: bool) -> tuple[PartResult, PartResult, DaemonProcess | None]:
    """Boot `reps` fresh daemons on moto: (boot part, memory figures at this size, last daemon if kept)."""
    boot = PartResult("boot", "6. Boot to READY and status answer time during a full sync")
    memory = PartResult("memory", "5. Peak memory of the daemon during a full sync")
    started = time.perf_counter()
    ready_s, p50s, p99s, maxes, samples, peaks, failures = [], [], [], [], [], [], []
    kept: DaemonProcess | None = None
    for rep in range(reps):
        proc = DaemonProcess(work / f"boot-{rep}", moto.endpoint).start()
        prober = StatusProber(proc)
        prober.start()
        try:
            ready_s.append(proc.wait_ready(timeout))
        except Exception:
            prober.stop()
            proc.stop()
            raise
        prober.stop()
        lat = prober.latencies_ms
        if lat:
            p50s.append(percentile(lat, 50))
            p99s.append(percentile(lat, 99))
            maxes.append(max(lat))
        samples.append(len(lat))
        failures.append(prober.failures)
        peaks.append(proc.ready_peak_rss / 2**20)
        if keep_last and rep == reps - 1:
            kept = proc
        else:
            proc.stop()
    boot.add(f"boot to READY=1 ({items:,} items, empty cache)", summarize(ready_s), "s")
    if p99s:
        boot.add("status answer time p50 during the boot full sync", summarize(p50s), "ms")
        boot.add("status answer time p99 during the boot full sync", summarize(p99s), "ms")
        boot.add("status answer time max during the boot full sync", summarize(maxes), "ms")
    boot.notes.append(f"`seo-sync run` as a child process with a fake NOTIFY_SOCKET; time from spawn to READY=1. "
                      f"A prober asked `status` every 20 ms until READY: {sum(samples)} answers in all, "
                      f"{sum(failures)} failed. The contract sets no target here (the socket's per-client "
                      "timeout is 1 s).")
    boot.raw = {"ready_seconds": ready_s, "status_p50_ms": p50s, "status_p99_ms": p99s, "status_max_ms": maxes,
                "status_samples": samples, "status_failures": failures}
    boot.seconds = time.perf_counter() - started
    memory.add(f"peak RSS at READY, {items:,} items from moto", summarize(peaks), "MiB")
    memory.raw["moto_peak_mib"] = peaks
    return boot, memory, kept


def idle_cost(moto: MotoProcess, proc: DaemonProcess, seconds: float, windows: int = 3,
              settle: float = 3.0) -> PartResult:
    """GetRecords and DescribeStream calls per shard per second while nothing is written."""
    part = PartResult("idle", "4. Idle cost")
    started = time.perf_counter()
    shards = open_shards(moto.endpoint)  # before the first count, so our own calls are not in it
    time.sleep(settle)  # let the tailers fall back to their idle interval after the boot
    width = seconds / windows
    rows: dict[str, list[float]] = {"GetRecords": [], "DescribeStream": [], "GetShardIterator": [], "other": []}
    before = moto.counts()
    for _ in range(windows):
        t0 = time.monotonic()
        time.sleep(width)
        after = moto.counts()
        dt = time.monotonic() - t0
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        for op in ("GetRecords", "DescribeStream", "GetShardIterator"):
            rows[op].append(delta.pop(op, 0) / dt / shards)
        rows["other"].append(sum(delta.values()) / dt)
        before = after
    gr = part.add("GetRecords calls / s / shard", summarize(rows["GetRecords"]), "calls/s/shard")
    part.add("DescribeStream calls / s / shard", summarize(rows["DescribeStream"]), "calls/s/shard")
    part.add("GetShardIterator calls / s / shard", summarize(rows["GetShardIterator"]), "calls/s/shard")
    part.add("other DynamoDB calls / s (all tables)", summarize(rows["other"]), "calls/s")
    monthly = [r * shards * SECONDS_PER_MONTH * PRICE_PER_GET_RECORDS for r in rows["GetRecords"]]
    part.add(f"monthly GetRecords cost at list price, {shards} shards", summarize(monthly), "USD")
    part.targets.append(Target("idle GetRecords per second per shard", gr.median, "<=", 1.0, "calls/s/shard"))
    units = gr.median * shards * SECONDS_PER_MONTH
    part.notes.append(f"Counted by the moto server (a middleware on its WSGI app), not by the daemon: {seconds:.0f} "
                      f"idle seconds in {windows} windows after {settle:.0f} s to settle, {shards} open shards "
                      f"(DescribeStream). Price: "
                      f"$0.02 per 100,000 GetRecords (us-east-1, DescribeStream/GetShardIterator free); a month is "
                      f"730 h = {units:,.0f} calls, {'inside' if units <= FREE_TIER_UNITS else 'beyond'} the "
                      f"2.5 M/month free tier.")
    reported = proc.status().get("get_records_per_hour")
    if reported is not None:
        part.notes.append(f"The daemon's own status says {reported} GetRecords calls per hour since it started.")
    part.raw = {"per_window": rows, "shards": shards, "monthly_usd": monthly}
    part.seconds = time.perf_counter() - started
    return part


def synthetic_memory(work: Path, sizes: tuple[int, int], reps: int, timeout: float,
                     memory: PartResult | None = None) -> PartResult:
    """Peak RSS at READY of fresh daemons on the synthetic source at two sizes, and their ratio."""
    part = memory or PartResult("memory", "5. Peak memory of the daemon during a full sync")
    started = time.perf_counter()
    peaks: dict[int, list[float]] = {}
    ready: dict[int, list[float]] = {}
    totals: dict[int, int] = {}
    for size in sizes:
        src = FakeSourceProcess(size, work / f"fakesource-{size}.log").start()
        totals[size] = src.total
        try:
            for rep in range(reps):
                proc = DaemonProcess(work / f"memory-{size}-{rep}", src.endpoint).start()
                try:
                    ready.setdefault(size, []).append(proc.wait_ready(timeout))
                    peaks.setdefault(size, []).append(proc.ready_peak_rss / 2**20)
                finally:
                    proc.stop()
        finally:
            src.stop()
    small, large = sizes
    for size in sizes:
        part.add(f"peak RSS at READY, {totals[size]:,} items (synthetic source)", summarize(peaks[size]), "MiB")
        part.add(f"boot to READY, {totals[size]:,} items (synthetic source)", summarize(ready[size]), "s")
    growth = part.add(f"peak RSS {totals[large]:,} / {totals[small]:,} items (same rep)",
                      summarize(ratios(peaks[large], peaks[small])), "x")
    part.targets.append(Target(f"peak RSS growth from {totals[small]:,} to {totals[large]:,} items",
                               abs(growth.median - 1) * 100, "<=", 20, "%"))
    part.notes.append("Peak RSS is the daemon's VmHWM read the moment READY=1 arrives (the boot full sync has "
                      "committed). The synthetic source is a small HTTP server speaking the DynamoDB JSON "
                      "protocol with the same generated businesses, pre-encoded, so the daemon's own work "
                      "dominates; both sizes use it so the ratio compares like with like.")
    part.raw.update({"synthetic_peak_mib": {str(k): v for k, v in peaks.items()},
                     "synthetic_ready_s": {str(k): v for k, v in ready.items()},
                     "synthetic_items": {str(k): v for k, v in totals.items()}})
    part.seconds += time.perf_counter() - started
    return part


def lag_status(proc: DaemonProcess) -> dict[str, Any]:
    """What the daemon says about itself after the lag run (records applied, errors)."""
    status = proc.status()
    return {t: {k: v.get(k) for k in ("records_applied", "lag_seconds", "error", "dead_letters")}
            for t, v in status.get("tables", {}).items()}
