"""`python -m tests.bench [--quick] [--out DIR]`: every benchmark part in one go, then the report.

Order (full plan, about 12 minutes on 2 cores): apply throughput (no DynamoDB); moto in its own
process, loaded with >= 20,000 items; full sync vs the baselines; three daemon boots (boot time,
status answer time, memory at 20,000 items), the last one kept for the idle window and the lag run;
the lag while SIGHUPs rebuild every table (a daemon of its own); the plain-poller lag baseline; the
lag of one host on Kinesis through the relay, by polling and by enhanced fan-out (through the EFO
front, a fake of the push); memory on the synthetic source at 20,000 and 100,000 items. A part that
fails is reported as an error; the others still run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from seo_sync.logs import configure_logging
from tests.bench import ddb, part_apply, part_daemon, part_fullsync, part_kinesis, part_lag, part_resync_lag
from tests.bench.common import PartResult
from tests.bench.daemonproc import DaemonProcess
from tests.bench.datagen import make_dataset
from tests.bench.fakesource import FakeSourceProcess
from tests.bench.motoproc import MotoProcess
from tests.bench.plots import lag_plot
from tests.bench.report import render_markdown, write_json

PARTS = ("apply", "fullsync", "boot", "idle", "lag", "resync-lag", "memory")
DAEMON_PARTS = {"boot", "idle", "lag", "resync-lag", "memory"}


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one benchmark run."""

    items: int = 20_000
    fast_items: int = 100_000  # the full sync part on the synthetic source
    apply_records: int = 40_000
    reps: int = 3
    lag_rate: float = 50.0
    lag_seconds: float = 60.0
    idle_seconds: float = 60.0
    memory_sizes: tuple[int, int] = (20_000, 100_000)
    boot_timeout: float = 300.0
    reader_interval: float = 0.002
    # Lag while tables are resynced: the rate the resync freeze was first measured at; SIGHUPs go
    # out from resync_from to resync_until (fractions of the writing time), so writes before and
    # after them show the lag with nothing resyncing. moto serves a Scan page with a whole core, so
    # the daemon of this part scans with one segment and moto delays each Scan page: the resync
    # lasts long and the writer's calls and GetRecords are not starved by the Scan.
    resync_lag_rate: float = 20.0
    resync_lag_seconds: float = 60.0
    resync_from: float = 0.2
    resync_until: float = 0.8
    resync_scan_segments: int = 1
    resync_scan_delay: float = 0.5
    resync_daemon_env: tuple[tuple[str, str], ...] = ()  # more SEO_SYNC_* settings for that daemon (diagnosis)
    # Seconds between the EFO front's reads of moto's shard: the fake's own hop, kept well below the
    # lag measured through it (AWS pushes within about 70 ms of a put, with no such hop).
    efo_front_tail: float = 0.01


FULL = Plan()
QUICK = Plan(items=2_000, fast_items=10_000, apply_records=10_000, lag_seconds=15.0, idle_seconds=15.0,
             memory_sizes=(2_000, 10_000), boot_timeout=120.0, resync_lag_seconds=15.0)


def _quiet_logs() -> None:
    """Only warnings from the daemon modules the bench runs in-process (full sync, apply)."""
    configure_logging("console", "WARNING", stream=sys.stderr)


def _say(start: float, text: str) -> None:
    print(f"[{time.monotonic() - start:6.0f}s] {text}", file=sys.stderr, flush=True)


def _guard(parts: list[PartResult], key: str, title: str, fn: Callable[[], PartResult]) -> PartResult | None:
    """Run one part; an exception becomes an error entry in the report instead of ending the run."""
    try:
        part = fn()
    except Exception as e:
        _record_error(parts, key, title, e)
        return None
    parts.append(part)
    return part


def _record_error(parts: list[PartResult], key: str, title: str, exc: BaseException) -> None:
    """Report a failed part with the exception and the tail of its traceback."""
    tb = "".join(traceback.format_exception(exc, limit=-3)).strip().splitlines()
    part = PartResult(key, title, status="error", reason=f"{type(exc).__name__}: {str(exc)[:400]}")
    part.notes.append("traceback tail: " + " / ".join(line.strip() for line in tb[-4:]))
    parts.append(part)


def run(plan: Plan, out: Path, only: set[str], command: str, keep_work: bool = False) -> list[PartResult]:
    """Run the selected parts of `plan`, write the report files into `out`; returns the parts."""
    start = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="seo-sync-bench-"))  # caches, data dirs, logs of the children
    ddb.install_fake_aws_env()
    _quiet_logs()
    for name in [k for k in os.environ if k.startswith("SEO_SYNC_")]:
        os.environ.pop(name)  # the daemon children get exactly the settings the bench gives them
    parts: list[PartResult] = []
    daemon_raw = poller_raw = kinesis_raw = efo_raw = None
    memory_part: PartResult | None = None

    if "apply" in only:
        _say(start, f"apply throughput: {plan.apply_records:,} records x {plan.reps}")
        _guard(parts, "apply", "2. Apply throughput", lambda: part_apply.run(work, plan.apply_records, plan.reps, out))

    needs_moto = only & ({"fullsync"} | DAEMON_PARTS)
    fast: FakeSourceProcess | None = None
    if "fullsync" in only:
        _say(start, f"synthetic source for the full sync: {plan.fast_items:,} items")
        try:
            fast = FakeSourceProcess(plan.fast_items, work / "fakesource-fullsync.log").start()
        except Exception as e:
            _record_error(parts, "fullsync-fast", "1. Full sync on the fast source", e)
    moto = MotoProcess(work / "moto.log").start() if needs_moto else None
    try:
        if moto is not None:
            dataset = make_dataset(plan.items)
            ddb.create_tables(moto.endpoint)
            load_s = ddb.load(moto.endpoint, dataset.items)
            _say(start, f"moto at {moto.endpoint}: loaded {dataset.total:,} items {dataset.counts()} in {load_s:.1f}s")
            if "fullsync" in only:
                _say(start, f"full sync vs scan-only (fast source, {plan.fast_items:,} items; moto, "
                            f"{dataset.total:,} items) x {plan.reps}")
                _guard(parts, "fullsync", part_fullsync.TITLE,
                       lambda: part_fullsync.run(moto.endpoint, work, dataset.total, plan.reps,
                                                 server_pid=moto.pid, server=moto, fast=fast, out=out))
                if fast is not None:
                    fast.stop()
            kept: DaemonProcess | None = None
            if only & {"boot", "idle", "lag", "memory"}:
                boots = plan.reps if only & {"boot", "memory"} else 1  # idle and lag need one daemon only
                _say(start, f"daemon boots x {boots} on {dataset.total:,} items")
                keep = bool(only & {"idle", "lag"})
                try:
                    boot, memory_part, kept = part_daemon.boot_runs(moto, work, boots, plan.boot_timeout,
                                                                    dataset.total, keep)
                    if "boot" in only:
                        parts.append(boot)
                except Exception as e:
                    _record_error(parts, "boot", "6. Boot to READY and status answer time during a full sync", e)
            try:
                if kept is not None and "idle" in only:
                    _say(start, f"idle cost: {plan.idle_seconds:.0f} s")
                    _guard(parts, "idle", "4. Idle cost",
                           lambda: part_daemon.idle_cost(moto, kept, plan.idle_seconds))
                if kept is not None and "lag" in only:
                    _say(start, f"lag with seo-sync run: {plan.lag_rate:g}/s for {plan.lag_seconds:.0f} s")
                    before = moto.counts()
                    daemon_raw = part_lag.measure(moto.endpoint, kept.cache_path, work / "lag-daemon",
                                                  rate=plan.lag_rate, seconds=plan.lag_seconds, first=1, seed=True,
                                                  reader_interval=plan.reader_interval)
                    after = moto.counts()
                    daemon_raw["calls"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                    daemon_raw["daemon_status"] = part_daemon.lag_status(kept)
                    daemon_raw["change_log"] = part_apply.change_log_size(kept.cache_path)
            except Exception as e:
                _record_error(parts, "lag", "3. Replication lag", e)
                daemon_raw = None
            finally:
                if kept is not None:
                    kept.stop()
            if "resync-lag" in only:
                _guard(parts, "resync-lag", part_resync_lag.TITLE,
                       lambda: _resync_lag(plan, moto, work, out, say=lambda text: _say(start, text)))
            if "lag" in only:
                _say(start, f"lag with the plain 1 s poller: {plan.lag_rate:g}/s for {plan.lag_seconds:.0f} s")
                try:
                    poller_raw = part_lag.run_poller_baseline(moto.endpoint, work / "lag-poller",
                                                              rate=plan.lag_rate, seconds=plan.lag_seconds,
                                                              first=1_000_000, counts=moto.counts)
                except Exception as e:
                    _record_error(parts, "lag-baseline", "3. Replication lag (poller baseline)", e)
                _say(start, f"lag with seo-sync run on Kinesis (polling): {plan.lag_rate:g}/s for "
                            f"{plan.lag_seconds:.0f} s")
                try:
                    kinesis_raw = part_kinesis.measure_kinesis(moto, work, rate=plan.lag_rate,
                                                               seconds=plan.lag_seconds,
                                                               reader_interval=plan.reader_interval,
                                                               boot_timeout=plan.boot_timeout)
                except Exception as e:
                    _record_error(parts, "lag-kinesis", "3. Replication lag (Kinesis polling)", e)
                _say(start, f"lag with seo-sync run on Kinesis (EFO, fake): {plan.lag_rate:g}/s for "
                            f"{plan.lag_seconds:.0f} s")
                try:
                    efo_raw = part_kinesis.measure_kinesis(moto, work, rate=plan.lag_rate, seconds=plan.lag_seconds,
                                                           reader_interval=plan.reader_interval,
                                                           boot_timeout=plan.boot_timeout, efo=True,
                                                           front_tail=plan.efo_front_tail)
                except Exception as e:
                    _record_error(parts, "lag-kinesis-efo", "3. Replication lag (Kinesis EFO, fake)", e)
                if any(r is not None for r in (daemon_raw, poller_raw, kinesis_raw, efo_raw)):
                    parts.append(part_lag.lag_part(daemon_raw, poller_raw, plan.lag_seconds, plan.lag_rate,
                                                   plan.reader_interval, kinesis_raw, efo_raw, plan.efo_front_tail))
    finally:
        if moto is not None:
            moto.stop()
        if fast is not None:
            fast.stop()

    if "memory" in only:
        _say(start, f"memory on the synthetic source: {plan.memory_sizes} items x {plan.reps}")
        _guard(parts, "memory", "5. Peak memory of the daemon during a full sync",
               lambda: part_daemon.synthetic_memory(work, plan.memory_sizes, plan.reps, plan.boot_timeout,
                                                    memory_part))

    order = {k: i for i, k in enumerate(("fullsync", "apply", "lag", "lag-baseline", "resync-lag", "idle", "memory",
                                         "boot"))}
    parts.sort(key=lambda p: order.get(p.key, 99))
    seconds = time.monotonic() - start
    plot = None
    lag = next((p for p in parts if p.key == "lag" and p.raw), None)
    if lag is not None:
        plot = lag_plot({name: run["lags_ms"] for name, run in lag.raw.items()}, out / "bench-report.png",
                        limits=[("p50 limit 150 ms", 150.0), ("p99 limit 500 ms", 500.0)],
                        title="Replication lag (ack -> visible)")
    plan_doc = {**asdict(plan), "parts": sorted(only), "loadavg_at_start": load_at_start}
    write_json(out / "bench-report.json", command, plan_doc, parts, seconds)
    (out / "bench-report.md").write_text(render_markdown(command, plan_doc, parts, seconds, plot))
    if keep_work:
        _say(start, f"scratch directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    _say(start, f"done: {out / 'bench-report.md'}, {out / 'bench-report.json'}"
                + (f", {plot}" if plot else ""))
    return parts


def _resync_lag(plan: Plan, moto: MotoProcess, work: Path, out: Path, say: Callable[[str], None]) -> PartResult:
    """Part 3b on a daemon of its own: the lag writer at a steady rate while SIGHUPs rebuild every table."""
    seconds = plan.resync_lag_seconds
    resync_from, resync_until = plan.resync_from * seconds, plan.resync_until * seconds
    started = time.monotonic()
    daemon = DaemonProcess(work / "resync-lag", moto.endpoint,
                           env={"SEO_SYNC_FULLSYNC__SCAN_SEGMENTS": str(plan.resync_scan_segments),
                                **dict(plan.resync_daemon_env)}).start()
    try:
        daemon.wait_ready(plan.boot_timeout)
        say(f"lag while resyncing: {plan.resync_lag_rate:g}/s for {seconds:.0f} s, SIGHUPs from {resync_from:.0f} s "
            f"to {resync_until:.0f} s, Scan pages delayed {plan.resync_scan_delay:g} s")
        moto.set_scan_delay(plan.resync_scan_delay)  # after the boot: only the resyncs' Scans are slowed
        try:
            # Marks from 2,000,000 on: part 3's writes (from 1) are in the same DynamoDB tables.
            raw = part_resync_lag.measure(moto.endpoint, daemon, work / "lag-resync", rate=plan.resync_lag_rate,
                                          seconds=seconds, first=2_000_000, seed=True, resync_from=resync_from,
                                          resync_until=resync_until, reader_interval=plan.reader_interval,
                                          counts=moto.counts)
        finally:
            moto.set_scan_delay(0.0)
    finally:
        daemon.stop()
    part = part_resync_lag.resync_lag_part(raw, rate=plan.resync_lag_rate, seconds=seconds,
                                           resync_from=resync_from, resync_until=resync_until, out=out)
    part.notes.append(f"The daemon of this part runs with {plan.resync_scan_segments} Scan segment(s) and moto "
                      f"answers every Scan {plan.resync_scan_delay:g} s late (a sleep that costs it no CPU): moto "
                      "serves each Scan page with a whole core, and without this the writer's own PutItem calls "
                      "wait behind the resync's Scan, so the writer cannot keep its rate and its acknowledgements "
                      "come late (the acknowledgement times above show what the source took).")
    part.seconds = time.monotonic() - started
    return part


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmark."""
    p = argparse.ArgumentParser(prog="python -m tests.bench",
                                description="Run the seo-sync benchmark (the performance contract) and write "
                                            "bench-report.md, bench-report.json and bench-report.png.")
    p.add_argument("--quick", action="store_true", help="small sizes and short windows (about 3 minutes)")
    p.add_argument("--out", type=Path, default=Path("."),
                   help="directory for bench-report.md, bench-report.json, bench-report.png (default: here)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of: {', '.join(PARTS)}")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch directory (caches, logs)")
    args = p.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(PARTS)
    if unknown:
        p.error(f"unknown parts: {', '.join(sorted(unknown))}")
    command = "python -m tests.bench" + (" --quick" if args.quick else "") + \
        (f" --only {args.only}" if only != set(PARTS) else "")
    run(QUICK if args.quick else FULL, args.out, only, command, args.keep_work)
    return 0
