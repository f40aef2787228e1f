"""The benchmark's figures, drawn with matplotlib: the lag distribution and full-sync throughput over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt  # after use("Agg"): the backend is chosen before pyplot loads

Progress = Sequence[tuple[float, int]]  # (seconds since the start, items done so far)


def lag_plot(series: dict[str, Sequence[float]], path: Path, limits: Sequence[tuple[str, float]] = (),
             title: str = "Replication lag") -> Path:
    """A histogram and the cumulative distribution of each series of lags (ms), with the limits as lines."""
    data = {name: sorted(values) for name, values in series.items() if values}
    # The x axis stops at the largest series' 99.5th percentile (or the last limit): one stray
    # multi-second lag would otherwise squeeze every distribution into the first pixels.
    tops = [v[min(len(v) - 1, int(len(v) * 0.995))] for v in data.values()]
    x_max = max([*tops, *(value for _, value in limits), 1.0]) * 1.05
    fig, (hist, cdf) = plt.subplots(2, 1, figsize=(10, 7.2), sharex=True)
    try:
        for name, values in data.items():
            shown = [min(v, x_max) for v in values]
            hist.hist(shown, bins=60, range=(0, x_max), weights=[100 / len(values)] * len(values), alpha=0.6,
                      label=f"{name} ({len(values):,})")
            cdf.plot(values, [100 * (i + 1) / len(values) for i in range(len(values))], label=name)
        for (label, value), color in zip(limits, ("grey", "tab:red", "black", "tab:purple"), strict=False):
            for ax in (hist, cdf):
                ax.axvline(value, color=color, linestyle="--", linewidth=1, label=label if ax is hist else None)
        hist.set_ylabel("share of writes (%)")
        cdf.set_ylabel("cumulative (%)")
        cdf.set_xlabel("lag (ms): write acknowledged by DynamoDB -> row visible to a reader")
        cdf.set_xlim(0, x_max)
        cdf.set_ylim(0, 100)
        hist.set_title(title)
        hist.legend(loc="upper right")
        for ax in (hist, cdf):
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def lag_timeline_plot(samples: Sequence[tuple[float, str, float]], windows: Sequence[tuple[str, float, float]],
                      path: Path, limit: float | None = None,
                      title: str = "Replication lag over time, resync windows shaded") -> Path:
    """Each write's lag (ms) at its acknowledgement time, one colour a table; each table's resync window shaded
    in that table's colour, so a reader sees which writes fell inside their own table's rebuild."""
    tables = sorted({t for _, t, _ in samples} | {t for t, _, _ in windows})
    colors = {t: f"C{i}" for i, t in enumerate(tables)}
    fig, ax = plt.subplots(figsize=(10, 5))
    try:
        for table, start, end in windows:
            ax.axvspan(start, end, color=colors[table], alpha=0.15, linewidth=0)
        for table in tables:
            points = [(x, lag) for x, t, lag in samples if t == table]
            if points:
                ax.scatter([x for x, _ in points], [lag for _, lag in points], s=6, color=colors[table],
                           label=f"{table} ({len(points):,})")
        if limit is not None:
            ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label=f"{limit:g} ms")
        ax.set_xlabel("seconds since the first write (shaded: that table's full sync, start to swap)")
        ax.set_ylabel("lag (ms)")
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize="small")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def rate_over_time(progress: Progress, window: float = 0.25) -> tuple[list[float], list[float]]:
    """Items per second in consecutive windows of `window` seconds: (window midpoints, rates)."""
    if not progress:
        return [], []
    points = sorted(progress)
    end = points[-1][0]
    times, rates = [], []
    done_before, i, start = 0, 0, 0.0
    while start < end:
        stop = start + window
        while i < len(points) and points[i][0] <= stop:
            i += 1
        done = points[i - 1][1] if i else 0
        times.append(start + window / 2)
        rates.append((done - done_before) / window)
        done_before, start = done, stop
    return times, rates


def throughput_plot(series: dict[str, Progress], path: Path, title: str = "Full sync throughput",
                    window: float = 0.5) -> Path:
    """Items/s over time of each contender (one copy of the same tables each), and the items done.

    The plain Scan reports a whole 1 MB page at once, so windows much shorter than half a second
    show its pages rather than its rate.
    """
    fig, (rate, done) = plt.subplots(2, 1, figsize=(10, 7.2), sharex=True)
    try:
        for name, progress in series.items():
            if not progress:
                continue
            times, rates = rate_over_time(progress, window)
            total = max(n for _, n in progress)
            seconds = max(t for t, _ in progress)
            rate.plot(times, rates, label=name)
            done.plot([t for t, _ in sorted(progress)], [n for _, n in sorted(progress)],
                      label=f"{name}: {total:,} items in {seconds:.2f} s ({total / max(seconds, 1e-9):,.0f}/s)")
        rate.set_ylabel(f"items/s ({window:g} s windows)")
        done.set_ylabel("items done")
        done.set_xlabel("seconds since the start")
        rate.set_title(title)
        done.legend(loc="lower right", fontsize="small")
        for ax in (rate, done):
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
