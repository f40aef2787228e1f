"""What every benchmark part returns: its figures, targets and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.bench.stats import Summary


@dataclass
class Target:
    """One target of the performance contract and whether the measured median meets it."""

    name: str
    value: float
    op: str  # "<=" or ">="
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool:
        """True when the value satisfies the target."""
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
        }

