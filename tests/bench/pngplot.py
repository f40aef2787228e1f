"""A PNG of the lag distribution with the standard library only (zlib + struct; no matplotlib).

Two panels: a histogram of lags (ms) and their cumulative distribution, one colour per series,
with the contract's p50 and p99 limits drawn as vertical lines. Text uses a built-in 5x7 font.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GREY: Color = (200, 200, 200)
SERIES_COLORS: tuple[Color, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))
LIMIT_COLORS: tuple[Color, ...] = ((120, 120, 120), (214, 39, 40))

# 5x7 glyphs, one int per row, bit 4 = leftmost column.
FONT: dict[str, tuple[int, ...]] = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11), "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E), "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F), "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F), "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E), "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11), "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11), "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D), "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E), "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A), "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04), "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    "-": (0, 0, 0, 0x1F, 0, 0, 0), ".": (0, 0, 0, 0, 0, 0x0C, 0x0C), " ": (0, 0, 0, 0, 0, 0, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02), ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03), ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0), "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "<": (0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02), ">": (0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08),
    ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08), "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04),
}


class Canvas:
    """An RGB raster with a few drawing primitives."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        """Colour one pixel (ignored outside the canvas)."""
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill the rectangle [x0, x1] x [y0, y1]."""
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.width, max(x0, x1) + 1)):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, dashed: bool = False) -> None:
        """A straight line (Bresenham), optionally dashed."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        while True:
            if not dashed or (step // 5) % 2 == 0:
                self.set(x0, y0, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy
            step += 1

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> int:
        """Draw text (upper-cased, unknown characters as '?'); returns the x after it."""
        for ch in text.upper():
            rows = FONT.get(ch, FONT["?"])
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits & (0x10 >> c):
                        self.rect(x + c * scale, y + r * scale, x + c * scale + scale - 1,
                                  y + r * scale + scale - 1, color)
            x += 6 * scale
        return x

    def png(self) -> bytes:
        """The canvas as PNG bytes (8-bit RGB, no filtering)."""
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[y * stride:(y + 1) * stride]) for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + \
            chunk(b"IEND", b"")


def text_width(text: str, scale: int = 2) -> int:
    """Pixels a text takes at `scale`."""
    return len(text) * 6 * scale


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = span / max(1, ticks)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def lag_plot(series: dict[str, Sequence[float]], path: Path, limits: Sequence[tuple[str, float]] = (),
             title: str = "Replication lag", width: int = 1000, height: int = 720) -> Path:
    """Write a histogram + CDF of each series (lags in ms) to `path`; returns the path."""
    canvas = Canvas(width, height)
    data = {k: sorted(v) for k, v in series.items() if v}
    all_values = [x for v in data.values() for x in v]
    hi_values = [v[min(len(v) - 1, int(len(v) * 0.995))] for v in data.values()]
    x_max = max([*hi_values, *(lim for _, lim in limits), 1.0]) * 1.05
    x_min = min(0.0, min(all_values) if all_values else 0.0)
    left, right = 90, width - 30
    panels = ((70, height // 2 - 30), (height // 2 + 40, height - 70))
    canvas.text(left, 20, title, scale=3)
    step = _nice_step(x_max - x_min)

    def px(v: float) -> int:
        return left + int((v - x_min) / (x_max - x_min) * (right - left))

    bins = 60
    bin_width = (x_max - x_min) / bins
    hists = {}
    for name, values in data.items():
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, max(0, int((v - x_min) / bin_width)))] += 1
        hists[name] = [c / len(values) for c in counts]
    y_top = max([max(h) for h in hists.values()] + [0.01])
    for (top, bottom), kind in zip(panels, ("histogram", "cdf"), strict=True):
        canvas.line(left, bottom, right, bottom, BLACK)
        canvas.line(left, top, left, bottom, BLACK)
        tick = math.ceil(x_min / step) * step
        while tick <= x_max:
            x = px(tick)
            canvas.line(x, top, x, bottom, GREY, dashed=True)
            label = _fmt(tick)
            canvas.text(x - text_width(label) // 2, bottom + 6, label)
            tick += step
        y_max = 1.0 if kind == "cdf" else y_top
        for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
            y = bottom - int(frac * (bottom - top))
            canvas.line(left - 4, y, left, y, BLACK)
            label = f"{frac * y_max * 100:.0f}%"
            canvas.text(left - 8 - text_width(label), y - 7, label)
        for i, (name, values) in enumerate(data.items()):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            if kind == "histogram":
                for b, share in enumerate(hists[name]):
                    if share <= 0:
                        continue
                    # Side by side within the bin, so no series hides another.
                    b0, b1 = px(x_min + b * bin_width) + 1, px(x_min + (b + 1) * bin_width) - 1
                    sub = max(1, (b1 - b0) // len(data))
                    x0 = b0 + i * sub
                    canvas.rect(x0, bottom - int(share / y_max * (bottom - top)), x0 + sub - 1, bottom - 1, color)
            else:
                prev = None
                for j, v in enumerate(values):
                    point = (px(min(v, x_max)), bottom - int((j + 1) / len(values) * (bottom - top)))
                    if prev is not None:
                        canvas.line(prev[0], prev[1], point[0], point[1], color)
                        canvas.line(prev[0], prev[1] - 1, point[0], point[1] - 1, color)
                    prev = point
        for k, (label, value) in enumerate(limits):
            color = LIMIT_COLORS[k % len(LIMIT_COLORS)]
            canvas.line(px(value), top, px(value), bottom, color, dashed=True)
            canvas.text(px(value) + 4, top + 4 + 18 * k, label, color)
        canvas.text(left, top - 22, "share of writes per bin" if kind == "histogram" else "cumulative share")
        canvas.text(right - text_width("lag (ms)"), bottom + 26, "lag (ms)")
    legend_x = right - 10 - max((text_width(n) for n in data), default=0) - 30
    for i, name in enumerate(data):
        y = panels[0][0] + 10 + 20 * i
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        canvas.rect(legend_x, y, legend_x + 20, y + 12, color)
        canvas.text(legend_x + 28, y, name)
    path.write_bytes(canvas.png())
    return path
