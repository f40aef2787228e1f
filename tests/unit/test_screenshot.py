"""The README's picture of the demo: it renders, and the committed one shows the current view."""

from __future__ import annotations

import html
import re
from pathlib import Path

from seo_sync.demo.screenshot import render_svg
from seo_sync.demo.view import LEGEND, status_table
from seo_sync.demo.writer import WriterStats

REPO = Path(__file__).resolve().parents[2]
PICTURE = REPO / "docs" / "demo.svg"
STATUS = {"state": "streaming", "tables": {
    "businesses": {"state": "streaming", "rows": 12, "records_applied": 3, "lag_seconds": 0.41,
                   "last_full_sync": 1_764_000_000},
    "keywords": {"state": "streaming", "rows": 161, "records_applied": 2, "lag_seconds": 0.2}}}


def _shown_text(svg: str) -> str:
    """The text a viewer of the SVG reads (rich writes a space as a no-break space)."""
    parts = re.findall(r"<text[^>]*>(.*?)</text>", svg, re.S)
    return " ".join(html.unescape(p).replace("\xa0", " ") for p in parts)


def _headers() -> list[str]:
    return [str(c.header) for c in status_table(None, WriterStats(), 0).columns]


def test_the_live_view_renders_as_svg() -> None:
    """render_svg draws the table, its caption and legend as an SVG terminal window."""
    stats = WriterStats(edits=2, new_keywords=1, log=["edit ace-auto-repair -> v4"])
    svg = render_svg(STATUS, stats, 15.0)
    text = _shown_text(svg)
    assert svg.lstrip().startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "ace-auto-repair" in text and "streaming" in text and "161" in text
    for header in _headers():
        assert header in text, header


def test_the_committed_picture_shows_the_current_view() -> None:
    """docs/demo.svg is in the README and has today's columns and legend (else: make screenshot)."""
    assert "](docs/demo.svg)" in (REPO / "README.md").read_text(encoding="utf-8")
    text = " ".join(_shown_text(PICTURE.read_text(encoding="utf-8")).split())
    for header in _headers():
        assert header in text, f"{header!r} is not in docs/demo.svg: run `make screenshot`"
    assert " ".join(LEGEND.split()[:6]) in text, "the legend changed: run `make screenshot`"
    assert "daemon: streaming" in text  # captured once the daemon streamed, not while it booted
