"""Smoke test of the benchmark code (tests/bench/) on tiny sizes, so it keeps working between runs.

The benchmark itself (`make bench`) is outside the default run; this checks its code paths and
that what it compares is comparable (the apply path and the raw baseline write the same rows).
"""

from __future__ import annotations

import json
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seo_sync.codec import validate_item
from seo_sync.schema import TABLES
from tests.bench import ddb, lagproc, part_apply, part_fullsync, part_lag, part_resync_lag, plots, runner
from tests.bench.common import PartResult, ProgressLog, Target
from tests.bench.daemonproc import DaemonProcess, StatusProber
from tests.bench.datagen import business_items, make_dataset
from tests.bench.fakesource import FakeSourceProcess
from tests.bench.motoproc import MotoProcess
from tests.bench.profiles import combined_profile, cpu_seconds, peak_rss_mib, reset_peak_rss, with_cpu
from tests.bench.report import render_markdown
from tests.bench.stats import lag_percentiles, percentile, ratios, summarize


def _rows(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1, 2').fetchall() for t in TABLES}
    finally:
        conn.close()


def test_generated_businesses_have_the_realistic_shape() -> None:
    """Generated data: valid items, unique keys, keywords in two languages, versioned templates, deterministic."""
    ds = make_dataset(600)
    assert ds.total >= 600 and all(ds.counts()[t] > 0 for t in TABLES)
    for table, items in ds.items.items():
        spec = TABLES[table]
        assert len({tuple(i[k]["S"] for k in spec.key_names) for i in items}) == len(items)
        for item in items:
            validate_item(item)
    assert {i["language"]["S"] for i in ds.items["keywords"]} == {"en", "es"}
    assert len(ds.items["keywords"]) / ds.businesses >= 100
    assert any(int(t["version"]["N"]) > 1 for t in ds.items["prompt_templates"])
    assert business_items(3) == business_items(3)


def test_stats_median_percentiles_and_same_run_ratios() -> None:
    """Summaries are median/min/max; percentiles use nearest rank; ratios pair runs one to one."""
    s = summarize([3.0, 1.0, 2.0])
    assert (s.median, s.min, s.max, s.runs) == (2.0, 1.0, 3.0, 3)
    assert percentile(list(range(1, 101)), 99) == 99
    assert lag_percentiles([10.0] * 99 + [500.0])["max"] == 500.0
    assert ratios([2.0, 9.0], [1.0, 3.0]) == [2.0, 3.0]
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])


def test_apply_path_and_raw_baseline_write_identical_rows(tmp_path: Path) -> None:
    """The apply-throughput comparison is fair: both sides end with exactly the same table contents."""
    pages = part_apply.make_batches(300)
    part_apply.run_apply_path(tmp_path / "apply.db", pages)
    part_apply.run_raw(tmp_path / "raw.db", part_apply.raw_rows(pages))
    applied, raw = _rows(tmp_path / "apply.db"), _rows(tmp_path / "raw.db")
    assert applied == raw
    assert sum(len(v) for v in applied.values()) == sum(len(r) for _, r in pages) // 2


def test_apply_part_reports_figures_and_targets(tmp_path: Path) -> None:
    """The apply part yields throughput, raw rate, the same-run ratio and the change log's cost with their targets."""
    part = part_apply.run(tmp_path, 200, reps=2, out=tmp_path)
    assert part.status == "ok"
    assert part.figures["apply path records/s"].runs == 2
    assert {t.name for t in part.targets} == {"apply throughput", "apply time / raw upsert time",
                                              "apply time with the change log / without"}
    assert part.figures["change log: bytes per entry (b-tree pages / entries)"].median > 0
    # The profile that explains the figure: a call tree through the apply path, and its HTML form.
    ((title, tree),) = part.blocks
    assert "pyinstrument" in title and "run_apply_path" in tree and "apply_batch" in tree
    assert "<html" in (tmp_path / "bench-profile-apply.html").read_text()[:2000].lower()
    assert "of which decoding" in " ".join(part.figures)


def test_cpu_seconds_counts_another_process(tmp_path: Path) -> None:
    """with_cpu reports the CPU a busy child process burned meanwhile, and this process's own."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<60: pass"])

    def until_child_burned(seconds: float) -> None:
        # However loaded the machine is: wait until the child has had `seconds` of CPU (by /proc).
        start, deadline = cpu_seconds(child.pid), time.monotonic() + 30
        while cpu_seconds(child.pid) - start < seconds and time.monotonic() < deadline:
            time.sleep(0.02)

    try:
        _, used = with_cpu(lambda: until_child_burned(0.3), child.pid)
    finally:
        child.kill()
        child.wait()
    assert 0.3 <= used["server_cpu"] <= used["wall"] + 0.02 and used["own_cpu"] < 0.2


def test_fullsync_part_reports_both_sources_ratios_and_profiles(tmp_path: Path) -> None:
    """On the fast source and on moto: times, items/s, ratios to the plain Scan, CPU of both processes, peak RSS,
    the throughput plot, the before/after pyinstrument profiles and moto's own profile."""
    ddb.install_fake_aws_env()
    fast = FakeSourceProcess(300).start()
    moto = MotoProcess(tmp_path / "moto.log").start()
    try:
        ds = make_dataset(150)
        ddb.create_tables(moto.endpoint)
        ddb.load(moto.endpoint, ds.items)
        part = part_fullsync.run(moto.endpoint, tmp_path, ds.total, reps=1, server_pid=moto.pid, server=moto,
                                 fast=fast, out=tmp_path)
        moto_after = moto.take_profile()
    finally:
        moto.stop()
        fast.stop()
    names = " ".join(part.figures)
    assert "fast source, " in names and "moto, " in names and "scan only / naive loop" in names
    assert part.figures[f"moto, {ds.total:,} items: moto server CPU seconds during seo-sync full sync"].median > 0
    fast_full = f"fast source, {fast.total:,} items: seo-sync full sync"
    assert part.figures[fast_full + " items/s"].median > 0
    assert part.figures[f"fast source, {fast.total:,} items: peak RSS of this process during seo-sync full sync"
                        ].median > 10
    assert {t.name for t in part.targets} == {"full sync / scan only, fast source", "full sync / scan only, moto",
                                              "moonshot: full sync / scan only, fast source",
                                              "full sync / naive loop, moto"}
    assert not any(n.startswith("WARNING") for n in part.notes)
    titles = [title for title, _ in part.blocks]
    assert any("after: fast path on" in t for t in titles) and any("before: botocore" in t for t in titles)
    before = next(text for title, text in part.blocks if "before: botocore" in title)
    after = next(text for title, text in part.blocks if "after: fast path on" in title)
    for text in (before, after):  # which functions lead depends on the size: at 300 items, client set-up
        assert "by inclusive time" in text and "by own time" in text and "%  " in text
    moto_title, moto_text = part.blocks[-1]
    assert "moto server" in moto_title and "function calls" in moto_text and "moto/" in moto_text
    assert moto_after == "not profiling"  # taking the profile stopped it
    assert part.images == [("full sync throughput: items/s over time, seo-sync vs the plain Scan",
                            "bench-fullsync.png")]
    assert (tmp_path / "bench-fullsync.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<html" in (tmp_path / "bench-profile-fullsync.html").read_text()[:2000].lower()


class _Spinner:
    """Busy work on a worker thread, for the profile test."""

    def spin(self, seconds: float) -> None:
        """Burn CPU for `seconds`."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass


def test_combined_profile_includes_worker_threads() -> None:
    """A method run on another thread is in the profile, with its time; the caller's own stack is not."""
    def work() -> int:
        t = threading.Thread(target=_Spinner().spin, args=(0.15,))
        t.start()
        t.join()
        return 7

    result, text = combined_profile(work, [(_Spinner, "spin")])
    inclusive = text.split("by own time")[0]
    assert result == 7
    assert "_Spinner.spin  tests/service/test_bench_smoke.py" in inclusive
    assert "pytest" not in text  # above the profiled call: not ours


def test_baselines_and_full_sync_copy_every_item(tmp_path: Path, dynamo_endpoint: str) -> None:
    """Scan-only counts every item; the naive loop and seo-sync's full sync store every item."""
    ds = make_dataset(250)
    ddb.create_tables(dynamo_endpoint)
    ddb.load(dynamo_endpoint, ds.items)
    assert ddb.scan_only(dynamo_endpoint, 2)[1] == ds.total
    assert ddb.open_shards(dynamo_endpoint) == len(TABLES)  # moto: one open shard a table
    assert ddb.naive_loop(dynamo_endpoint, tmp_path / "naive.db")[1] == ds.total
    assert part_fullsync.seo_sync_full_sync(dynamo_endpoint, tmp_path / "full")[1] == ds.total


def test_lag_analysis_maps_marks_to_first_visibility() -> None:
    """An update counts as visible at the first look showing its mark or a newer one; unseen writes count."""
    raw = {
        "writes": [[1, "businesses", 0.0, 1.0], [11, "businesses", 0.0, 2.0], [3, "keywords", 0.0, 1.5],
                   [13, "keywords", 0.0, 1.6]],
        "seen": [["businesses", 11, 2.25], ["keywords", 3, 1.75]],
    }
    samples, never = part_lag.lags(raw)
    assert sorted(round(lag) for _, lag in samples) == [250, 250, 1250]
    assert never == 1
    assert lagproc.mark_of("prompt_templates", lagproc.sort_key_for("prompt_templates", 42)) == 42
    assert lagproc.mark_of("keywords", lagproc.sort_key_for("keywords", 7)) == 7


def test_poller_lag_harness_runs_writer_reader_and_poller(tmp_path: Path, dynamo_endpoint: str) -> None:
    """The writer, reader and 1-s-style poller processes cooperate; every write becomes visible (~4 s)."""
    ddb.create_tables(dynamo_endpoint)
    # drain: how long the last writes may take to become visible at most; the run goes on only until they are.
    raw = part_lag.run_poller_baseline(dynamo_endpoint, tmp_path, rate=20, seconds=1.0, first=1, interval=0.1,
                                       drain=20.0)
    run = part_lag.summarize_run("poller", raw, 1.0)
    assert run["writes"] == 20
    assert run["never_visible"] == 0
    assert run["overall"]["p50"] > 0


def test_resync_windows_come_from_the_log_and_split_the_writes() -> None:
    """Full sync windows come from the daemon's JSON log; a write falls in its own table's, another's, or none."""
    log = "\n".join([
        '{"event": "full_sync_started", "table": "keywords", "timestamp": "2026-01-01T00:00:10.000000Z"}',
        "not json, full_sync_ but a stray line",
        '{"event": "full_sync_done", "table": "keywords", "rows": 9, "stream_records": 2, "reason": "SIGHUP", '
        '"timestamp": "2026-01-01T00:00:12.500000Z"}',
        '{"event": "full_sync_started", "table": "businesses", "timestamp": "2026-01-01T00:00:13Z"}',
    ])
    epoch = 1767225600.0  # 2026-01-01T00:00:00Z
    (window,) = part_resync_lag.resync_windows(log, wall_to_monotonic=-epoch)  # the unfinished one is left out
    assert (window["table"], window["start"], window["end"], window["reason"]) == ("keywords", 10.0, 12.5, "SIGHUP")
    samples = [("keywords", 11.0, 300.0), ("businesses", 11.0, 40.0), ("keywords", 20.0, 30.0)]
    groups = part_resync_lag.classify(samples, [window])
    assert groups == {part_resync_lag.OWN: [300.0], part_resync_lag.OTHER: [40.0], part_resync_lag.NONE: [30.0]}


def test_resync_lag_part_drives_sighups_while_the_writer_writes(tmp_path: Path) -> None:
    """`--only resync-lag` on a tiny plan: the daemon is SIGHUPed while the writer writes; windows, groups, plots."""
    plan = runner.Plan(items=150, resync_lag_seconds=2.0, resync_from=0.0, resync_until=1.0, resync_scan_delay=0.05,
                       boot_timeout=120.0)
    runner.run(plan, tmp_path, {"resync-lag"}, "python -m tests.bench --only resync-lag")
    doc = json.loads((tmp_path / "bench-report.json").read_text())
    (part,) = doc["parts"]
    assert part["key"] == "resync-lag" and part["status"] == "ok", part["reason"]
    raw = part["raw"]
    assert raw["requests"] and raw["trigger"] == "SIGHUP (every table)"
    # The driver waits until the last request was carried out: every table's full sync is closed in the log.
    assert {w["table"] for w in raw["windows"]} == set(TABLES)
    assert all(w["reason"] == "SIGHUP" and w["start"] <= w["end"] for w in raw["windows"])
    assert raw["never_visible"] == 0
    assert sum(len(v) for v in raw["groups"].values()) == raw["writes"] == 40
    assert any(t["name"] == "writes never visible" for t in part["targets"])
    for image in part["images"]:
        assert _png_size(tmp_path / image["file"])[0] == 1000
    text = (tmp_path / "bench-report.md").read_text()
    assert "## 3b. Replication lag while tables are resynced" in text and "bench-resync-lag-timeline.png" in text


def test_synthetic_source_serves_partitioned_scans_and_a_stream() -> None:
    """The synthetic source answers boto3 Scans whose segments partition the table exactly."""
    ddb.install_fake_aws_env()
    src = FakeSourceProcess(300).start()
    try:
        client = ddb.client(src.endpoint)
        for segments in (1, 3):
            assert ddb.scan_only(src.endpoint, segments)[1] == src.total
        keys = []
        for seg in range(3):
            kwargs = {"TableName": "seo_keywords", "Segment": seg, "TotalSegments": 3, "Limit": 37}
            while True:
                resp = client.scan(**kwargs)
                keys += [(i["business_id"]["S"], i["keyword_id"]["S"]) for i in resp["Items"]]
                if "LastEvaluatedKey" not in resp:
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        assert len(keys) == len(set(keys)) > 0
        arn = client.describe_table(TableName="seo_keywords")["Table"]["LatestStreamArn"]
        streams = ddb.client(src.endpoint, "dynamodbstreams")
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shards[0]["ShardId"],
                                        ShardIteratorType="LATEST")["ShardIterator"]
        assert streams.get_records(ShardIterator=it)["Records"] == []
    finally:
        src.stop()


def test_daemon_harness_sees_ready_memory_and_status(tmp_path: Path) -> None:
    """`seo-sync run` on the synthetic source: READY=1 seen, peak RSS read, status answered (~4 s)."""
    ddb.install_fake_aws_env()
    src = FakeSourceProcess(300).start()
    proc = DaemonProcess(tmp_path / "data", src.endpoint).start()
    prober = StatusProber(proc, pause=0.01)
    prober.start()
    try:
        assert proc.wait_ready(60) > 0
        prober.stop()
        assert proc.ready_peak_rss > 10 * 2**20
        rows = {t: v["rows"] for t, v in proc.status()["tables"].items()}
        assert sum(rows.values()) == src.total
        assert prober.failures == 0
    finally:
        prober.stop()
        assert proc.stop() == 0
        src.stop()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_lag_plot_is_a_png(tmp_path: Path) -> None:
    """matplotlib draws the lag histogram and CDF into a 1000x720 PNG."""
    path = plots.lag_plot({"a": [10.0, 20.0, 30.0, 200.0], "b": [500.0, 900.0], "empty": []}, tmp_path / "lag.png",
                          limits=[("p50 limit", 150.0)])
    assert _png_size(path) == (1000, 720)


def test_throughput_plot_and_rates(tmp_path: Path) -> None:
    """Items/s in windows come from the progress points; the throughput plot is a PNG."""
    times, rates = plots.rate_over_time([(0.0, 0), (0.1, 50), (0.25, 100), (0.5, 400)], window=0.25)
    assert times == [0.125, 0.375] and rates == [400.0, 1200.0]
    log = ProgressLog()
    log.add(10)
    log.reached(5)  # lower than done: ignored
    log.reached(30)
    assert [n for _, n in log.points] == [0, 10, 30]
    path = plots.throughput_plot({"ours": log.points, "plain": [(0.0, 0), (1.0, 20)], "none": []},
                                 tmp_path / "tp.png")
    assert _png_size(path) == (1000, 720)


def test_peak_rss_window_can_be_reset() -> None:
    """VmHWM rises by what was made resident, and a reset starts a new window below that peak."""
    if not reset_peak_rss():
        pytest.skip("this kernel refuses to reset VmHWM")
    base = peak_rss_mib()
    ballast = b"\x01" * (64 * 2**20)  # written, so resident
    high = peak_rss_mib()
    del ballast
    assert high >= base + 60
    assert reset_peak_rss() and peak_rss_mib() < high


def test_report_lists_targets_and_failed_parts() -> None:
    """The markdown report shows met/missed targets and a failed part with its reason."""
    ok = PartResult("apply", "2. Apply throughput")
    ok.add("apply path records/s", summarize([1.0, 2.0, 3.0]), "records/s")
    ok.targets.append(Target("apply throughput", 2.0, ">=", 50_000, "records/s"))
    err = PartResult("fullsync", "1. Full sync", status="error", reason="SourceUnavailable: Scan failed\n  hint: check")
    text = render_markdown("python -m tests.bench", {"reps": 3}, [ok, err], 12.0, None)
    assert "| 1. Full sync | — | error: SourceUnavailable: Scan failed hint: check | — | — |" in text
    assert "**missed**" in text
    assert "**error**: SourceUnavailable: Scan failed" in text
    assert "| apply path records/s | 2 | 1 | 3 | 3 | records/s |" in text


def test_runner_writes_report_and_json(tmp_path: Path) -> None:
    """`python -m tests.bench --only apply` on a tiny plan writes bench-report.md and .json, nothing else."""
    plan = runner.Plan(apply_records=100, reps=2)
    runner.run(plan, tmp_path, {"apply"}, "python -m tests.bench --only apply")
    doc = json.loads((tmp_path / "bench-report.json").read_text())
    assert [p["key"] for p in doc["parts"]] == ["apply"]
    assert doc["parts"][0]["figures"]["apply path records/s"]["runs"] == 2
    assert "## 2. Apply throughput" in (tmp_path / "bench-report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-profile-apply.html", "bench-report.json",
                                                         "bench-report.md"]
