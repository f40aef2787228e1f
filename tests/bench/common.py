"""What every benchmark part returns: its figures, targets and notes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.bench.stats import Summary


@dataclass
class Target:
    """One target of the performance contract and whether the measured median meets it."""

    name: str
    value: float
    op: str  # "<=", "<" or ">="
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool:
        """True when the value satisfies the target."""
        if self.op == "<":
            return self.value < self.limit
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"name": self.name, "value": self.value, "op": self.op, "limit": self.limit, "unit": self.unit,
                "met": self.met}


@dataclass
class PartResult:
    """One part of the benchmark: its figures (medians of repeated runs), targets and notes."""

    key: str
    title: str
    status: str = "ok"  # ok / error
    reason: str = ""
    figures: dict[str, Summary] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (title, preformatted text): profiles
    images: list[tuple[str, str]] = field(default_factory=list)  # (caption, file name beside the report)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, name: str, summary: Summary, unit: str = "") -> Summary:
        """Record one figure."""
        self.figures[name] = summary
        self.units[name] = unit
        return summary

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form with every raw figure."""
        return {
            "key": self.key, "title": self.title, "status": self.status, "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "figures": {k: {**v.as_dict(), "unit": self.units.get(k, "")} for k, v in self.figures.items()},
            "targets": [t.as_dict() for t in self.targets], "notes": self.notes,
            "blocks": [{"title": t, "text": x} for t, x in self.blocks], "raw": self.raw,
            "images": [{"caption": c, "file": f} for c, f in self.images],
        }



class ProgressLog:
    """(seconds since start, items done) as a copy goes, from any thread: the throughput plot's data."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.points: list[tuple[float, int]] = [(0.0, 0)]
        self.done = 0
        self._lock = threading.Lock()

    def restart(self) -> None:
        """Time zero is now (the moment the timed copy starts)."""
        with self._lock:
            self.start, self.points, self.done = time.perf_counter(), [(0.0, 0)], 0

    def add(self, items: int) -> None:
        """`items` more are done."""
        with self._lock:
            self.done += items
            self.points.append((time.perf_counter() - self.start, self.done))

    def reached(self, done: int) -> None:
        """`done` items are done in all (monotonic: a lower figure is ignored)."""
        with self._lock:
            if done > self.done:
                self.done = done
                self.points.append((time.perf_counter() - self.start, done))
