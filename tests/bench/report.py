"""The benchmark's outputs: bench-report.md (for people), bench-report.json (every raw figure)."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.bench.common import PartResult


def environment() -> dict[str, Any]:
    """Where the figures were taken: machine, interpreter and library versions."""
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "host": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
        "moto": version("moto"), "boto3": version("boto3"), "seo-sync": version("seo-sync"),
        "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def _num(v: float, unit: str) -> str:
    if unit in ("x",):
        return f"{v:.2f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.4g}" if v else "0"


def write_json(path: Path, command: str, plan: dict[str, Any], parts: list[PartResult], seconds: float) -> None:
    """Every figure and every raw per-run value."""
    doc = {"command": command, "environment": environment(), "plan": plan, "total_seconds": round(seconds, 1),
           "parts": [p.as_dict() for p in parts]}
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")


def render_markdown(command: str, plan: dict[str, Any], parts: list[PartResult], seconds: float,
                    plot: Path | None) -> str:
    """The human report: targets first, then each part's figures and notes."""
    env = environment()
    out = ["# seo-sync benchmark report", ""]
    out.append(f"`{command}` on {env['host']} ({env['cpus']} CPUs, {env['platform']}), {env['utc']} UTC; "
               f"Python {env['python']}, SQLite {env['sqlite']}, moto {env['moto']}, boto3 {env['boto3']}. "
               f"Total time {seconds / 60:.1f} min.")
    load = plan.get("loadavg_at_start")
    if load:
        busy = load[0] > 1.0
        out.append("")
        out.append(f"Load average before the benchmark started (1/5/15 min): {' / '.join(str(x) for x in load)}"
                   + (": **the machine was busy with other work; treat every timing as pessimistic and "
                      "run again on a quiet machine.**" if busy else " (quiet)."))
    out.append("")
    out.append("Every figure is the median of repeated runs with their min and max; every ratio is taken "
               "within one run and then summarised. Raw figures: `bench-report.json`.")
    out.append("")
    out.append("## Targets")
    out.append("")
    out.append("| part | target | measured (median) | limit | result |")
    out.append("|---|---|---|---|---|")
    for p in parts:
        if p.status != "ok":
            reason = " ".join(p.reason.split())  # one table row, whatever the reason holds
            out.append(f"| {p.title} | — | {p.status}: {reason} | — | — |")
            continue
        for t in p.targets:
            out.append(f"| {p.title} | {t.name} | {_num(t.value, t.unit)} {t.unit} | {t.op} {_num(t.limit, t.unit)} "
                       f"{t.unit} | {'met' if t.met else '**missed**'} |")
    out.append("")
    for p in parts:
        out.append(f"## {p.title}")
        out.append("")
        if p.status != "ok":
            out.append(f"**{p.status}**: {p.reason}")
            out.append("")
        if p.figures:
            out.append("| figure | median | min | max | runs | unit |")
            out.append("|---|---:|---:|---:|---:|---|")
            for name, s in p.figures.items():
                unit = p.units.get(name, "")
                out.append(f"| {name} | {_num(s.median, unit)} | {_num(s.min, unit)} | {_num(s.max, unit)} | "
                           f"{s.runs} | {unit} |")
            out.append("")
        for note in p.notes:
            out.append(f"- {note}")
        if p.seconds:
            out.append(f"- This part took {p.seconds:.0f} s.")
        out.append("")
        for title, text in p.blocks:
            out.extend([f"{title}:", "", "```text", text, "```", ""])
        for caption, name in p.images:
            out.append(f"![{caption}]({name})")
            out.append("")
        if p.key == "lag" and plot is not None and plot.exists():
            out.append(f"![lag distribution]({plot.name})")
            out.append("")
    out.append("## Plan")
    out.append("")
    out.append("```json")
    out.append(json.dumps(plan, indent=1))
    out.append("```")
    return "\n".join(out) + "\n"
