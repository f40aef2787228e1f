"""The README's picture of the demo: a real demo run's live view, drawn by rich's own SVG export.

`make screenshot` runs `python -m seo_sync.demo.screenshot docs/demo.svg`: the demo for a few
seconds on its own embedded DynamoDB in a temporary directory, then the view of its last status.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from seo_sync.config import Settings
from seo_sync.demo.embedded import EmbeddedDynamo, embedded_settings
from seo_sync.demo.view import DemoView, live_view
from seo_sync.demo.writer import WriterStats

WIDTH = 100  # columns of the pictured terminal: the legend wraps, nothing is cut
RUN_SECONDS = 14.0  # long enough for the writer to make a few changes the view then shows


def render_svg(status: dict[str, Any] | None, stats: WriterStats, elapsed: float) -> str:
    """The live view of `status` as an SVG document (a terminal window, the way rich draws it)."""
    console = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(live_view(status, stats, elapsed))
    return console.export_svg(title="make demo")


def capture(seconds: float = RUN_SECONDS) -> str:
    """Run the demo for `seconds` and return the SVG of its last live view."""
    from seo_sync.demo.live import run_live_demo

    quiet = DemoView(Console(file=io.StringIO()))
    server = EmbeddedDynamo().start()
    try:
        with tempfile.TemporaryDirectory(prefix="seo-sync-screenshot-") as tmp:
            settings = embedded_settings(Settings(data_dir=Path(tmp)), server.endpoint)
            summary = run_live_demo(settings, server.endpoint, quiet, seconds)
    finally:
        server.stop()
    w = summary["writer"]
    stats = WriterStats(edits=w["edits"], new_keywords=w["new_keywords"], soft_deletes=w["soft_deletes"],
                        conflicts=w["conflicts"], log=list(w["recent"]))
    return render_svg(summary["final_status"], stats, summary["seconds"])


def main(argv: list[str]) -> int:
    """Write the picture to the file named by the one argument."""
    from seo_sync.logs import configure_logging  # as the command line does: warnings only, on stderr

    if len(argv) != 1:
        print("usage: python -m seo_sync.demo.screenshot OUT.svg", file=sys.stderr)
        return 64
    configure_logging("console", "WARNING", stream=sys.stderr)
    Path(argv[0]).write_text(capture(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
