"""Profiles that explain a figure: pyinstrument call trees, and CPU time per process.

A missed target is reported with where its time goes (the issue's contract): the apply part
profiles one pass of the apply path with pyinstrument and writes the call tree to the report;
the full sync part reads how much CPU the moto server and this process spent on each contender.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process (Linux: `5` into clear_refs resets VmHWM); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM) since it started or since reset_peak_rss, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def threads_profiled(targets: Sequence[tuple[type, str]], sessions: list[Any],
                     interval: float = 0.0005) -> Iterator[None]:
    """While inside, every call of the methods `targets` names (class, method) runs under its own pyinstrument
    profiler, and its session is appended to `sessions`.

    pyinstrument samples only the thread that started it; wrapping the functions that worker threads run
    (the full sync's Scan segments) is how their time gets into the profile.
    """
    from pyinstrument import Profiler

    originals = [(owner, name, getattr(owner, name)) for owner, name in targets]

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        def profiled(*args: Any, **kwargs: Any) -> Any:
            profiler = Profiler(interval=interval)
            profiler.start()
            try:
                return method(*args, **kwargs)
            finally:
                profiler.stop()
                sessions.append(profiler.last_session)
        return profiled

    for owner, name, method in originals:
        setattr(owner, name, wrap(method))
    try:
        yield
    finally:
        for owner, name, method in originals:
            setattr(owner, name, method)


def combined_profile(fn: Callable[[], T], targets: Sequence[tuple[type, str]], html: Path | None = None,
                     top: int = 22) -> tuple[T, str]:
    """Run `fn` with its own thread and the threads running `targets` profiled: (result, where the time went).

    The text lists functions by inclusive and by own time, summed over every profiled thread (wall time:
    a thread waiting for a lock, a socket or the GIL shows as the call it waits in). With `html`,
    pyinstrument's interactive view of the same profile (one root per thread) is written there.
    """
    from pyinstrument import Profiler
    from pyinstrument.session import Session

    sessions: list[Any] = []
    main = Profiler(interval=0.0005)
    with threads_profiled(targets, sessions):
        main.start()
        try:
            result = fn()
        finally:
            main.stop()
    session = main.last_session
    for other in sessions:
        session = Session.combine(session, other)
    if html is not None:
        from pyinstrument.renderers import HTMLRenderer
        html.write_text(HTMLRenderer().render(session))
    inclusive, own = _function_times(session.root_frame())
    total = sum(own.values()) or 1.0

    def table(times: dict[str, float]) -> list[str]:
        ranked = sorted(times.items(), key=lambda kv: -kv[1])[:top]
        return [f"{100 * t / total:5.1f}%  {name}" for name, t in ranked]

    text = ["by inclusive time (the function and what it calls):", *table(inclusive), "",
            "by own time (the function itself):", *table(own)]
    return result, "\n".join(text)


# Frames every thread passes through (thread start-up, the profiling wrapper, the benchmark's lambdas):
# listed by inclusive time they would only repeat 100%.
_WRAPPERS = ("combined_profile", "profiled")
_PLUMBING = re.compile(r"(.*/)?(threading\.py|profiles\.py)$|<.*>$")


def _function_times(root: Any) -> tuple[dict[str, float], dict[str, float]]:
    """(inclusive, own) seconds per function over a pyinstrument frame tree, recursion counted once.

    Only frames below the profiling wrappers count: above them is whoever called the benchmark.
    """
    inclusive: dict[str, float] = {}
    own: dict[str, float] = {}
    stack: list[tuple[Any, frozenset[str], bool]] = [(root, frozenset(), False)]
    while stack:
        frame, above, inside = stack.pop()
        if frame is None:
            continue
        where = frame.file_path_short or ""
        if frame.is_synthetic or not inside:  # [root], [self], thread roots, the caller's own stack
            entered = inside or (where.endswith("profiles.py") and frame.function in _WRAPPERS)
            stack.extend((child, above, entered) for child in frame.children)
            continue
        name = f"{frame.class_name + '.' if frame.class_name else ''}{frame.function}  {where}"
        if name not in above and not _PLUMBING.match(where):
            inclusive[name] = inclusive.get(name, 0.0) + frame.time
        if frame.total_self_time:
            own[name] = own.get(name, 0.0) + frame.total_self_time
        stack.extend((child, above | {name}, True) for child in frame.children)
    return inclusive, own
