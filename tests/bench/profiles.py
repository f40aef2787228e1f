"""Profiles that explain a figure: pyinstrument call trees, and CPU time per process.

A missed target is reported with where its time goes (the issue's contract): the apply part
profiles one pass of the apply path with pyinstrument and writes the call tree to the report;
the full sync part reads how much CPU the moto server and this process spent on each contender.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_TICKS = os.sysconf("SC_CLK_TCK")


def call_tree(fn: Callable[[], T], html: Path | None = None, interval: float = 0.0005,
              hide: str = r".*/(threading|queue|selectors)\.py") -> tuple[T, str]:
    """Run `fn` under pyinstrument: (its result, the call tree as text, 1% and up).

    With `html`, the interactive profile is written there too.
    """
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    profiler = Profiler(interval=interval)
    profiler.start()
    try:
        result = fn()
    finally:
        profiler.stop()
    session = profiler.last_session
    assert session is not None
    text = ConsoleRenderer(unicode=False, color=False, short_mode=False, show_all=False, time="percent_of_total",
                           processor_options={"filter_threshold": 0.01, "hide_regex": hide}).render(session)
    if html is not None:
        html.write_text(profiler.output_html())
    return result, _strip_header(text)


def _strip_header(text: str) -> str:
    """The tree without pyinstrument's banner (timestamps, logo), at most 60 lines."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith(("100.0%", "100%"))), 0)
    body = [ln for ln in lines[start:] if ln.strip() and not ln.lstrip().startswith("To view this report")]
    return "\n".join(body[:60])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (its threads included) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def with_cpu(fn: Callable[[], T], other_pid: int | None) -> tuple[T, dict[str, float]]:
    """Run `fn`: its result and the CPU seconds this process and `other_pid` spent meanwhile, and the wall time."""
    own0, other0 = time.process_time(), cpu_seconds(other_pid) if other_pid else 0.0
    wall0 = time.perf_counter()
    result = fn()
    cpu: dict[str, Any] = {"wall": time.perf_counter() - wall0, "own_cpu": time.process_time() - own0}
    if other_pid:
        cpu["server_cpu"] = cpu_seconds(other_pid) - other0
    return result, cpu
