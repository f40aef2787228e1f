"""Part 1: a full sync vs merely reading the same tables, on the fast synthetic source and on moto.

On each source the contenders run in this process, one after another in a rotating order per run,
and each ratio divides two times taken in the same run. The baseline is a plain boto3 parallel
Scan of the same tables (the read limit: nothing that stores the data can do less). On the fast
source seo-sync also runs with botocore's own response parser (the fast path of
aws/raw_responses.py off, as when its self-check in aws/raw_check.py fails): the before and after
of that change in the same run. On moto a
naive loop runs too. moto is slow enough to be the bound there; the fast source is not (its own
CPU seconds are in the report), so there the ratio shows seo-sync's own cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from seo_sync.aws import raw_check
from seo_sync.cache.writer import Cache
from seo_sync.config import Settings, load_settings
from seo_sync.schema import TABLES
from seo_sync.sync import capture, fullsync
from tests.bench import ddb
from tests.bench.common import PartResult, ProgressLog, Target
from tests.bench.fakesource import FakeSourceProcess
from tests.bench.motoproc import MotoProcess
from tests.bench.plots import throughput_plot
from tests.bench.profiles import combined_profile, peak_rss_mib, reset_peak_rss, with_cpu
from tests.bench.stats import ratios, summarize

TITLE = "1. Full sync vs merely reading the tables"
SCAN, FULL, BOTOCORE, NAIVE = "scan", "fullsync", "fullsync_botocore", "naive"
LABELS = {SCAN: "scan only (plain boto3 parallel Scan)", FULL: "seo-sync full sync",
          BOTOCORE: "seo-sync full sync, botocore's parser (fast path off)",
          NAIVE: "naive loop (1 segment, INSERT per item, autocommit)"}
Contender = Callable[[int, ProgressLog], tuple[float, int]]


def bench_settings(data_dir: Path, endpoint: str, read_timeout: float | None = None) -> Settings:
    """Default settings pointed at the moto server and a data dir (nothing from the environment)."""
    aws: dict[str, object] = {"endpoint_url": endpoint, "region": ddb.REGION}
    if read_timeout is not None:
        aws["read_timeout"] = read_timeout
    return load_settings(path=None, env={}, overrides={"data_dir": data_dir, "aws": aws})


def seo_sync_full_sync(endpoint: str, data_dir: Path, read_timeout: float | None = None, *,
                       botocore_parse: bool = False, progress: ProgressLog | None = None) -> tuple[float, int]:
    """seo-sync's full sync of all five tables into a fresh cache: (seconds, rows in the cache).

    With `botocore_parse`, Scan and GetRecords answers go through botocore's parser (the fast path off).
    """
    settings = bench_settings(data_dir, endpoint, read_timeout)
    cache = Cache.open(settings.cache_path)
    try:
        if botocore_parse:  # the fallback a failed self-check of the fast path takes, forced
            raw_check.force_off("the benchmark's botocore run")
        try:
            src = ddb.source(endpoint, settings.table_prefix)
        finally:
            raw_check.forget()
        done = 0
        start = time.perf_counter()
        if progress is not None:
            progress.restart()
        for spec in TABLES.values():
            report = None if progress is None else (lambda rows, base=done: progress.reached(base + rows))
            fullsync.full_sync_table(cache, src, spec, settings.fullsync, capture_stream=True, reason="bench",
                                     progress=report)
            done += cache.count(spec.name)
            if progress is not None:
                progress.reached(done)
        seconds = time.perf_counter() - start
        return seconds, sum(cache.count(t) for t in TABLES)
    finally:
        cache.close()


Runs = dict[str, dict[str, list[float]]]  # contender -> figure (seconds, rows, peak_mib, own_cpu, ...) -> per run


def _rotate(reps: int, contenders: dict[str, Contender], source_pid: int | None) -> tuple[Runs, dict[str, ProgressLog]]:
    """Every contender `reps` times, rotating who goes first: (per contender, its runs' figures; last progress)."""
    runs: Runs = {name: {} for name in contenders}
    progress: dict[str, ProgressLog] = {}
    order = list(contenders)
    for rep in range(reps):
        for name in order[rep % len(order):] + order[:rep % len(order)]:
            log = ProgressLog()
            reset_peak_rss()
            (seconds, rows), used = with_cpu(lambda n=name, r=rep, p=log: contenders[n](r, p), source_pid)
            figures = {"seconds": seconds, "rows": float(rows), "peak_mib": peak_rss_mib(), **used}
            for key, value in figures.items():
                runs[name].setdefault(key, []).append(value)
            progress[name] = log
    return runs, progress


def _figures(part: PartResult, where: str, runs: Runs, source: str) -> None:
    """Times, items/s, ratios to the plain Scan, CPU and peak memory of each contender on one source."""
    for name, figures in runs.items():
        part.add(f"{where}: {LABELS[name]}", summarize(figures["seconds"]), "s")
    for name, figures in runs.items():
        part.add(f"{where}: {LABELS[name]} items/s",
                 summarize([n / t for n, t in zip(figures["rows"], figures["seconds"], strict=True)]), "items/s")
    for name in runs:
        if name != SCAN:
            part.add(f"{where}: {LABELS[name]} / scan only (same run)",
                     summarize(ratios(runs[name]["seconds"], runs[SCAN]["seconds"])), "x")
    for name, figures in runs.items():
        part.add(f"{where}: this process's CPU seconds during {LABELS[name]}", summarize(figures["own_cpu"]), "s")
        if "server_cpu" in figures:
            part.add(f"{where}: {source} CPU seconds during {LABELS[name]}", summarize(figures["server_cpu"]), "s")
        part.add(f"{where}: peak RSS of this process during {LABELS[name]}", summarize(figures["peak_mib"]), "MiB")


def fast_source(part: PartResult, fast: FakeSourceProcess, work: Path, reps: int, out: Path | None) -> None:
    """The contenders on the fast synthetic source, the throughput plot and the before/after profiles."""
    segments = bench_settings(work, fast.endpoint).fullsync.scan_segments
    contenders: dict[str, Contender] = {
        SCAN: lambda _rep, log: ddb.scan_only(fast.endpoint, segments, progress=log),
        FULL: lambda rep, log: seo_sync_full_sync(fast.endpoint, work / f"fast-{rep}", progress=log),
        BOTOCORE: lambda rep, log: seo_sync_full_sync(fast.endpoint, work / f"fast-botocore-{rep}",
                                                      botocore_parse=True, progress=log)}
    pid = fast.proc.pid if fast.proc is not None else None
    runs, progress = _rotate(reps, contenders, pid)
    where = f"fast source, {fast.total:,} items"
    _figures(part, where, runs, "synthetic source")
    ratio = summarize(ratios(runs[FULL]["seconds"], runs[SCAN]["seconds"]))
    part.targets.append(Target("full sync / scan only, fast source", ratio.median, "<=", 1.2, "x"))
    part.targets.append(Target("moonshot: full sync / scan only, fast source", ratio.median, "<", 1.0, "x"))
    part.add(f"{where}: full sync / full sync with botocore's parser (same run)",
             summarize(ratios(runs[FULL]["seconds"], runs[BOTOCORE]["seconds"])), "x")
    if any(r != fast.total for r in runs[FULL]["rows"] + runs[BOTOCORE]["rows"]):
        part.notes.append(f"WARNING: a full sync on the fast source did not store {fast.total} rows")
    source_share = max(c / t for c, t in zip(runs[SCAN]["server_cpu"], runs[SCAN]["seconds"], strict=True))
    part.notes.append(
        f"The fast source is not the bound: it spent at most {100 * source_share:.0f}% of one core during the plain "
        f"Scan (its CPU seconds above; it serves items pre-encoded), while this process spent "
        f"{summarize(runs[SCAN]['own_cpu']).median:.2f} s of CPU on the same read. Both copies use {segments} "
        "Scan segments a table, tables one after another; peak RSS is this process's VmHWM, reset before each "
        "contender (it includes the benchmark's own memory, about the same for all).")
    part.raw["fast"] = {"items": fast.total, "segments": segments, "runs": runs,
                        "progress": {k: v.points for k, v in progress.items()}}
    if out is not None:
        path = throughput_plot({LABELS[k]: v.points for k, v in progress.items()}, out / "bench-fullsync.png",
                               title=f"Full sync throughput on the fast source ({fast.total:,} items, last run)")
        part.images.append(("full sync throughput: items/s over time, seo-sync vs the plain Scan", path.name))
    targets = [(fullsync._Scan, "_run"), (capture.CaptureThread, "run")]
    for label, botocore_parse, html in (("after: fast path on", False, "bench-profile-fullsync.html"),
                                        ("before: botocore's parser", True, None)):
        _, text = combined_profile(
            lambda b=botocore_parse: seo_sync_full_sync(fast.endpoint, work / f"profile-botocore-{b}",
                                                        botocore_parse=b),
            targets, html=out / html if out is not None and html else None)
        title = (f"pyinstrument, one more full sync on the fast source ({label}; untimed): where the time of "
                 "the writer thread, the Scan segments and the stream capture goes (wall time, summed over threads)")
        part.blocks.append((title, text))


def moto_source(part: PartResult, endpoint: str, work: Path, expected_items: int, reps: int,
                server_pid: int | None, server: MotoProcess | None) -> None:
    """The contenders on moto (and the naive loop), and moto's own profile of one more full sync."""
    segments = bench_settings(work, endpoint).fullsync.scan_segments

    def naive(rep: int, _log: ProgressLog) -> tuple[float, int]:
        (work / f"naive-{rep}").mkdir(parents=True, exist_ok=True)
        return ddb.naive_loop(endpoint, work / f"naive-{rep}" / "naive.db")

    contenders: dict[str, Contender] = {
        SCAN: lambda _rep, log: ddb.scan_only(endpoint, segments, progress=log),
        FULL: lambda rep, log: seo_sync_full_sync(endpoint, work / f"fullsync-{rep}", progress=log),
        NAIVE: naive}
    runs, _ = _rotate(reps, contenders, server_pid)
    where = f"moto, {expected_items:,} items"
    _figures(part, where, runs, "moto server")
    vs_scan = summarize(ratios(runs[FULL]["seconds"], runs[SCAN]["seconds"]))
    vs_naive = part.add(f"{where}: full sync / naive loop (same run)",
                        summarize(ratios(runs[FULL]["seconds"], runs[NAIVE]["seconds"])), "x")
    bound = part.add(f"{where}: scan only / naive loop (same run)",
                     summarize(ratios(runs[SCAN]["seconds"], runs[NAIVE]["seconds"])), "x")
    part.targets.append(Target("full sync / scan only, moto", vs_scan.median, "<=", 1.2, "x"))
    part.targets.append(Target("full sync / naive loop, moto", vs_naive.median, "<=", 0.5, "x"))
    if any(c != expected_items for c in runs[FULL]["rows"]):
        part.notes.append(f"WARNING: full sync on moto left {runs[FULL]['rows']} rows, expected {expected_items}")
    part.notes.append(
        f"On moto merely reading the tables took {bound.median:.2f} x the naive loop's time in the same run: moto "
        "serves every Scan page from one Python process (one core under its GIL), its CPU seconds are close to "
        "the wall time of every contender, and this process's are a fraction: there the copy waits on the server. "
        "Every Scan request costs moto a fixed part (its WSGI dispatcher, about 14 ms) and a part that grows with "
        "the table (it sorts every item and compares them to the start key for each page), so seo-sync's 256 KB "
        "pages (which bound its memory) cost moto more than scan-only's 1 MB pages. Neither is true of DynamoDB.")
    part.raw["moto"] = {"items": expected_items, "segments": segments, "runs": runs}
    if server is not None:
        # Profiling makes moto several times slower: a page may take longer than the daemon's 10 s
        # read timeout, and this run is not timed, so it gets a long one. A failure here costs the
        # profile, never the figures above.
        server.start_profile()
        try:
            seo_sync_full_sync(endpoint, work / "fullsync-profiled", read_timeout=60)
            failed = ""
        except Exception as e:
            failed = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        finally:
            text = server.take_profile()
        title = "cProfile of the moto server while it served one more seo-sync full sync (untimed; own time)"
        part.blocks.append((title + (f"; the run failed: {failed}" if failed else ""), text))


def run(endpoint: str | None, work: Path, expected_items: int, reps: int, server_pid: int | None = None,
        server: MotoProcess | None = None, fast: FakeSourceProcess | None = None,
        out: Path | None = None) -> PartResult:
    """Measure the full sync against merely reading, on the fast source (`fast`) and on moto (`endpoint`)."""
    part = PartResult("fullsync", TITLE)
    started = time.perf_counter()
    if fast is not None:
        fast_source(part, fast, work, reps, out)
    if endpoint is not None:
        moto_source(part, endpoint, work, expected_items, reps, server_pid, server)
    part.seconds = time.perf_counter() - started
    return part
