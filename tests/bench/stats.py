"""Small statistics for the benchmark: medians with min and max, percentiles, ratios per run."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The median of repeated runs with their min and max, and how many runs there were."""

    median: float
    min: float
    max: float
    runs: int

    def as_dict(self) -> dict[str, float | int]:
        """A JSON-ready form."""
        return {"median": self.median, "min": self.min, "max": self.max, "runs": self.runs}

    def fmt(self, unit: str = "", digits: int = 2) -> str:
        """`median unit (min .. max, n runs)` for the report."""
        u = f" {unit}" if unit else ""
        return (f"{self.median:,.{digits}f}{u} (min {self.min:,.{digits}f}, max {self.max:,.{digits}f}, "
                f"{self.runs} runs)")


def summarize(values: Sequence[float]) -> Summary:
    """Median, min and max of a non-empty series of per-run figures."""
    if not values:
        raise ValueError("no values to summarize")
    vals = [float(v) for v in values]
    return Summary(statistics.median(vals), min(vals), max(vals), len(vals))


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by the nearest-rank method; NaN for an empty series."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def lag_percentiles(lags_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of a series of lags in milliseconds, plus the sample count."""
    return {
        "p50": percentile(lags_ms, 50), "p95": percentile(lags_ms, 95), "p99": percentile(lags_ms, 99),
        "max": max(lags_ms) if lags_ms else math.nan, "samples": float(len(lags_ms)),
    }


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-run ratios a[i] / b[i]: each comparison is taken within one run, never across runs."""
    if len(numerators) != len(denominators):
        raise ValueError("ratios need the same number of runs on both sides")
    return [a / b for a, b in zip(numerators, denominators, strict=True)]
