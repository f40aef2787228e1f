"""What the live demo shows while it runs: a table redrawn in place on a terminal, or one plain line
every few seconds when its output goes to a pipe or a file (`make demo | tee demo.txt`).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from seo_sync.demo.writer import WriterStats

PLAIN_EVERY = 5.0  # seconds between two progress lines when the output is not a terminal
# What each column means, shown under the table: the demo is where a newcomer learns to read status.
LEGEND = ("rows: rows in cache.db now · applied: stream records the daemon applied since it started · "
          "lag: seconds from a change in DynamoDB to its commit in the cache · last full sync: when the "
          "table was last copied whole")


def status_table(status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> Table:
    """The live view: daemon state, per-table rows and lag, and what the writer did."""
    t = Table(title="seo-sync demo — Ctrl-C to stop", caption=_caption(status, stats, elapsed))
    for col in ("table", "state", "rows", "applied", "lag s", "last full sync"):
        t.add_column(col, overflow="fold")
    for name, info in ((status or {}).get("tables") or {}).items():
        last = info.get("last_full_sync")
        synced = time.strftime("%H:%M:%S", time.localtime(last)) if last else ""
        t.add_row(name, str(info.get("state")), str(info.get("rows")), str(info.get("records_applied")),
                  f"{info.get('lag_seconds') or 0:.3f}", synced)
    return t


def live_view(status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> Group:
    """The table with the legend of its columns under it."""
    return Group(status_table(status, stats, elapsed), Text(LEGEND, style="dim"))


def _writer_line(stats: WriterStats) -> str:
    return f"writer: {stats.edits} edits, {stats.new_keywords} keywords, {stats.soft_deletes} soft deletes"


def _caption(status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> str:
    state = (status or {}).get("state", "starting")
    recent = "; ".join(stats.log[-3:])
    return f"daemon: {state}   up {elapsed:.0f}s   {_writer_line(stats)}\n{recent}"


def progress_line(status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> str:
    """One plain-text line of the demo's state, for a log file or a pipe."""
    tables = (status or {}).get("tables") or {}
    rows = " ".join(f"{name}={info.get('rows')}" for name, info in tables.items())
    lag = max((info.get("lag_seconds") or 0.0 for info in tables.values()), default=0.0)
    applied = sum(info.get("records_applied") or 0 for info in tables.values())
    state = (status or {}).get("state", "starting (no answer on the socket yet)")
    parts = [f"demo {elapsed:.0f}s", f"daemon {state}"]
    if tables:
        parts += [f"cache rows {rows}", f"applied {applied}", f"max lag {lag:.3f}s"]
    parts.append(_writer_line(stats))
    return " | ".join(parts)


class DemoView:
    """The demo's display: a rich Live table on a terminal, plain lines every PLAIN_EVERY s otherwise.

    `fallback` takes over when the reader of `console` goes away: in `make demo | tee demo.txt`,
    Ctrl-C ends `tee` as well, and the lines that follow still belong on the terminal.
    """

    def __init__(self, console: Console, fallback: Console | None = None) -> None:
        self.console = console
        self._fallback = fallback
        self._live: Live | None = None
        self._next_line = 0.0
        if console.is_terminal:
            self._live = Live(live_view(None, WriterStats(), 0), console=console, refresh_per_second=4)

    def __enter__(self) -> DemoView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.stop()

    def say(self, line: str) -> None:
        """Print one line as it is (never wrapped: the export lines are copied from it)."""
        try:
            self.console.out(line, highlight=False)
            self.console.file.flush()
        except BrokenPipeError:
            if self._fallback is None:
                raise
            self.console, self._fallback = self._fallback, None
            self.console.out(line, highlight=False)

    def update(self, status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> None:
        """Show the latest state (a plain line only when PLAIN_EVERY seconds have passed)."""
        if self._live is not None:
            self._live.update(live_view(status, stats, elapsed))
            return
        now = time.monotonic()
        if now >= self._next_line:
            self._next_line = now + PLAIN_EVERY
            self.say(progress_line(status, stats, elapsed))
