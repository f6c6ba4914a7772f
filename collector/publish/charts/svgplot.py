"""The few drawing primitives the site's charts need, written straight to SVG.

matplotlib drew every chart until 10,000 records made its ~0.24 CPU-s per chart (252 charts: more than half of a
cold site build) the largest cost of the build. These primitives draw the same kinds of charts in a few
milliseconds. What matplotlib is still used for: the tick positions (its MaxNLocator and LogLocator, so axes read
as they did) and the font metrics (DejaVu Sans advance widths, one lookup per distinct character), from which
every margin is computed, so no label is cut and the legend always fits below the axes.

Units are points (1/72 in), as in matplotlib's SVGs; text stays text (the browser's sans-serif font, which is
never wider than DejaVu Sans, so measured margins are an upper bound). The output is a pure function of the
arguments: byte-identical for the same data. Group ids follow matplotlib's (`axes_N`, `xtick_N`, `ytick_N`).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape

FONT_PT = 10.0
LINE = 1.25  # line height, in font sizes
TICK = 3.5  # tick length, pt
PAD = 6.0  # around the figure and between blocks
# matplotlib's default colour cycle (tab10), for series that have no palette colour
CYCLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
         "#17becf")


@functools.cache
def _advance(ch: str) -> float:
    """Advance width of one character at 1 pt (DejaVu Sans, matplotlib's default font)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a glyph missing from the font: its box is still measured
        width = TextToPath().get_text_width_height_descent(ch, FontProperties(family="sans-serif", size=10),
                                                           ismath=False)[0]
    return max(width, 3.0 if ch.strip() else 0.0) / 10.0


def text_width(text: str, size: float = FONT_PT) -> float:
    """Width of the widest line of `text`, pt."""
    return max((sum(_advance(c) for c in line) for line in text.split("\n")), default=0.0) * size


def text_height(text: str, size: float = FONT_PT) -> float:
    return (text.count("\n") + 1) * LINE * size


def fit(text: str, length: float, size: float = FONT_PT) -> str:
    """`text` with its words wrapped into lines at most `length` pt long (a y label along its axes)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= length:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two boxes (x0, y0, x1, y1) intersect."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass
class Scale:
    """An axis: the view (lo, hi), log or linear, and its ticks with their labels."""

    lo: float
    hi: float
    log: bool
    ticks: list[tuple[float, str]]

    def frac(self, v: float) -> float:
        if self.log:
            return (math.log(v) - math.log(self.lo)) / ((math.log(self.hi) - math.log(self.lo)) or 1.0)
        return (v - self.lo) / ((self.hi - self.lo) or 1.0)


def _number(v: float, decimals: int) -> str:
    text = f"{abs(v):,.{decimals}f}"
    return ("\u2212" + text) if v < 0 and float(text.replace(",", "")) != 0 else text


def linear(values: Sequence[float], nbins: int = 5, zero: bool = False, margin: float = 0.05,
           view: tuple[float, float] | None = None) -> Scale:
    """A linear axis over the values (plus a margin, or from zero), ticks by matplotlib's MaxNLocator; labels
    with as many decimals as the tick step needs, so two ticks never read the same."""
    from matplotlib.ticker import MaxNLocator

    if view is not None:
        lo, hi = view
    else:
        vals = [float(v) for v in values if v is not None and math.isfinite(v)] or [0.0, 1.0]
        lo, hi = min(vals), max(vals)
        span = (hi - lo) or abs(hi) or 1.0
        lo, hi = lo - margin * span, hi + margin * span
        if zero:
            lo = 0.0 if min(vals) >= 0 else lo
    if hi <= lo:
        hi = lo + 1.0
    ticks = [float(t) for t in MaxNLocator(nbins).tick_values(lo, hi)]
    eps = (hi - lo) * 1e-9
    ticks = [t for t in ticks if lo - eps <= t <= hi + eps]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(hi - lo) or 1.0
    decimals = next(d for d in range(13) if d == 12 or all(abs(round(t, d) - t) < step * 1e-6 for t in ticks))
    return Scale(lo, hi, False, [(t, _number(t, decimals)) for t in ticks])


def logarithmic(values: Sequence[float], base: float = 10.0, margin: float = 0.05) -> Scale:
    """A log axis over the positive values, ticks by matplotlib's LogLocator, labelled as plain decimals."""
    from matplotlib.ticker import LogLocator

    vals = [float(v) for v in values if v is not None and v > 0 and math.isfinite(v)] or [1.0, 10.0]
    lo, hi = math.log(min(vals)), math.log(max(vals))
    span = (hi - lo) or 1.0
    lo, hi = math.exp(lo - margin * span), math.exp(hi + margin * span)
    ticks = [float(t) for t in LogLocator(base=base).tick_values(lo, hi) if lo <= t <= hi]
    if len(ticks) < 2:  # less than a decade: the ends, labelled
        ticks = sorted({min(vals), max(vals)})
    return Scale(lo, hi, True, [(t, f"{t:g}") for t in ticks])


def fixed(values: Sequence[float], ticks: Sequence[float], log_base: float | None = None,
          labels: Sequence[str] | None = None, margin: float = 0.05) -> Scale:
    """An axis whose ticks are exactly `ticks` (each labelled once)."""
    vals = [float(v) for v in [*values, *ticks]]
    names = list(labels) if labels is not None else [f"{t:,.0f}" for t in ticks]
    if log_base:
        lo, hi = math.log(min(vals)), math.log(max(vals))
        span = (hi - lo) or 1.0
        return Scale(math.exp(lo - margin * span), math.exp(hi + margin * span), True, list(zip(ticks, names)))
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    return Scale(lo - margin * span, hi + margin * span, False, list(zip(ticks, names)))


def category(n: int, labels: Sequence[str]) -> Scale:
    """Positions 0..n-1, each labelled, half a step of room at both ends."""
    return Scale(-0.5, n - 0.5, False, [(float(i), labels[i]) for i in range(n)])


@dataclass
class Item:
    """A legend entry: its label and how its key is drawn."""

    label: str
    kind: str  # "patch", "line", "dashed", "line+o" (a line through a dot), or a marker ("o", "s", "*", "o-hollow")
    colour: str


class Svg:
    def __init__(self, width: float, height: float) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = []

    def add(self, part: str) -> None:
        self.parts.append(part)

    @contextmanager
    def group(self, gid: str) -> Iterator[None]:
        self.add(f'<g id="{gid}">')
        yield
        self.add("</g>")

    def text(self, x: float, y: float, text: str, colour: str, size: float = FONT_PT, anchor: str = "middle",
             valign: str = "top", rotate: float = 0.0) -> None:
        """Text whose box starts at y (valign top), is centred on y (middle) or ends at y (bottom); lines are
        stacked; `rotate` degrees anticlockwise about (x, y)."""
        lines = text.split("\n")
        height = len(lines) * LINE * size
        top = {"top": y, "middle": y - height / 2, "bottom": y - height}[valign]
        transform = f' transform="rotate({-rotate:g} {x:.2f} {y:.2f})"' if rotate else ""
        attrs = f'font-size="{size:g}" fill="{colour}" text-anchor="{anchor}"{transform}'
        if len(lines) == 1:
            self.add(f'<text x="{x:.2f}" y="{top + 0.8 * LINE * size:.2f}" {attrs}>{escape(text)}</text>')
            return
        spans = "".join(f'<tspan x="{x:.2f}" y="{top + (i + 0.8) * LINE * size:.2f}">{escape(line)}</tspan>'
                        for i, line in enumerate(lines))
        self.add(f"<text {attrs}>{spans}</text>")

    def line(self, points: Sequence[tuple[float, float]], colour: str, width: float = 1.0, dash: str = "") -> None:
        pts = " ".join(f"{x:.2f},{y:.2f}" for x, y in points)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{width:g}"'
                 f' stroke-linejoin="round"{dashed}/>')

    def area(self, points: Sequence[tuple[float, float]], colour: str, opacity: float) -> None:
        pts = " ".join(f"{x:.2f},{y:.2f}" for x, y in points)
        self.add(f'<polygon points="{pts}" fill="{colour}" fill-opacity="{opacity:g}" stroke="none"/>')

    def rect(self, x: float, y: float, w: float, h: float, colour: str) -> None:
        self.add(f'<rect x="{x:.2f}" y="{y:.2f}" width="{max(w, 0):.2f}" height="{max(h, 0):.2f}" fill="{colour}"/>')

    def marker(self, x: float, y: float, kind: str, colour: str, size: float = 5.0, hollow: bool = False,
               edge: float = 1.0) -> None:
        """size: the marker's width, pt."""
        fill, stroke = ("none", colour) if hollow else (colour, "none")
        r = size / 2
        style = f'fill="{fill}" stroke="{stroke}" stroke-width="{edge:g}"'
        if kind == "o":
            self.add(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{r:.2f}" {style}/>')
        elif kind == "s":
            self.add(f'<rect x="{x - r:.2f}" y="{y - r:.2f}" width="{size:.2f}" height="{size:.2f}" {style}/>')
        elif kind == "x":
            self.line([(x - r, y - r), (x + r, y + r)], colour, edge + 0.5)
            self.line([(x - r, y + r), (x + r, y - r)], colour, edge + 0.5)
        elif kind == "*":
            pts = []
            for i in range(10):
                a = math.pi / 2 + i * math.pi / 5
                rr = r if i % 2 == 0 else r * 0.42
                pts.append(f"{x + rr * math.cos(a):.2f},{y - rr * math.sin(a):.2f}")
            self.add(f'<polygon points="{" ".join(pts)}" {style}/>')

    def whisker(self, x0: float, y0: float, x1: float, y1: float, colour: str, cap: float = 2.0) -> None:
        """A min-max bar with a cap at each end (horizontal when y0 == y1)."""
        self.line([(x0, y0), (x1, y1)], colour, 0.8)
        for x, y in ((x0, y0), (x1, y1)):
            if y0 == y1:
                self.line([(x, y - cap), (x, y + cap)], colour, 0.8)
            else:
                self.line([(x - cap, y), (x + cap, y)], colour, 0.8)

    def bytes(self) -> bytes:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width:.1f}pt" height="{self.height:.1f}pt" '
                f'viewBox="0 0 {self.width:.2f} {self.height:.2f}" font-family="DejaVu Sans, Arial, Helvetica, '
                f'sans-serif">')
        return ('<?xml version="1.0" encoding="utf-8" standalone="no"?>\n' + head + "".join(self.parts)
                + "</svg>\n").encode("utf-8")


@dataclass
class Axes:
    """A plotting area at (x, y) of size (w, h), pt, with its two scales."""

    svg: Svg
    x: float
    y: float
    w: float
    h: float
    xs: Scale
    ys: Scale

    def px(self, v: float) -> float:
        return self.x + self.xs.frac(v) * self.w

    def py(self, v: float) -> float:
        return self.y + self.h - self.ys.frac(v) * self.h

    def frame(self, fg: str, grid: str, xgrid: bool = True, ygrid: bool = True) -> None:
        """Grid lines (below everything drawn after) and the four spines."""
        if xgrid:
            for v, _ in self.xs.ticks:
                self.svg.line([(self.px(v), self.y), (self.px(v), self.y + self.h)], grid, 0.5)
        if ygrid:
            for v, _ in self.ys.ticks:
                self.svg.line([(self.x, self.py(v)), (self.x + self.w, self.py(v))], grid, 0.5)
        self.svg.add(f'<rect x="{self.x:.2f}" y="{self.y:.2f}" width="{self.w:.2f}" height="{self.h:.2f}" '
                     f'fill="none" stroke="{fg}" stroke-width="0.8"/>')

    def xticks(self, fg: str, labels: bool = True, rotate: float = 0.0, size: float = FONT_PT) -> None:
        base = self.y + self.h
        for i, (v, name) in enumerate(self.xs.ticks):
            with self.svg.group(f"xtick_{i + 1}"):
                x = self.px(v)
                self.svg.line([(x, base), (x, base + TICK)], fg, 0.8)
                if labels and rotate:  # the label's end at the tick, going down to the left
                    self.svg.text(x, base + TICK + 4, name, fg, size, anchor="end", valign="middle", rotate=rotate)
                elif labels:
                    self.svg.text(x, base + TICK + 2, name, fg, size)

    def yticks(self, fg: str, labels: bool = True, size: float = FONT_PT) -> None:
        for i, (v, name) in enumerate(self.ys.ticks):
            with self.svg.group(f"ytick_{i + 1}"):
                y = self.py(v)
                self.svg.line([(self.x - TICK, y), (self.x, y)], fg, 0.8)
                if labels:
                    self.svg.text(self.x - TICK - 3, y, name, fg, size, anchor="end", valign="middle")


def xtick_band(scale: Scale, rotate: float = 0.0, size: float = FONT_PT) -> float:
    """Height under the axes taken by the x ticks and their labels."""
    if not scale.ticks:
        return TICK
    if rotate:
        s, c = math.sin(math.radians(rotate)), math.cos(math.radians(rotate))
        return TICK + 4 + max(text_width(n, size) * s + text_height(n, size) * c for _, n in scale.ticks)
    return TICK + 2 + max(text_height(n, size) for _, n in scale.ticks)


def ytick_band(scale: Scale, size: float = FONT_PT) -> float:
    """Width left of the axes taken by the y ticks and their labels."""
    return TICK + 3 + max((text_width(n, size) for _, n in scale.ticks), default=0.0)


def legend_layout(items: Sequence[Item], ncols: int, width: float, size: float) -> tuple[int, list[float], float]:
    """(columns, column widths, height): as many of the asked columns as fit the width."""
    if not items:
        return 0, [], 0.0
    for cols in range(min(ncols, len(items)), 0, -1):
        widths = [max(24 + text_width(it.label, size) for it in items[c::cols]) for c in range(cols)]
        if sum(widths) + 12 * (cols - 1) <= width or cols == 1:
            rows = [items[r * cols:(r + 1) * cols] for r in range(math.ceil(len(items) / cols))]
            height = sum(max(text_height(it.label, size) for it in row) + 2 for row in rows)
            return cols, widths, height
    raise AssertionError("unreachable")


def legend(svg: Svg, items: Sequence[Item], ncols: int, top: float, fg: str, size: float) -> None:
    """Entries in rows of `ncols` (fewer when they do not fit), centred under the axes from `top`."""
    cols, widths, _ = legend_layout(items, ncols, svg.width - 2 * PAD, size)
    if not cols:
        return
    total = sum(widths) + 12 * (cols - 1)
    left = (svg.width - total) / 2
    y = top
    with svg.group("legend_1"):
        for r in range(math.ceil(len(items) / cols)):
            row = items[r * cols:(r + 1) * cols]
            row_h = max(text_height(it.label, size) for it in row)
            x = left
            for c, it in enumerate(row):
                mid = y + LINE * size / 2
                if it.kind == "patch":
                    svg.rect(x, mid - 4, 16, 8, it.colour)
                elif it.kind in ("line", "dashed"):
                    svg.line([(x, mid), (x + 16, mid)], it.colour, 1.2, "4,2" if it.kind == "dashed" else "")
                elif it.kind.startswith("line+"):
                    svg.line([(x, mid), (x + 16, mid)], it.colour, 1.2)
                    svg.marker(x + 8, mid, it.kind[5:], it.colour, 4.0)
                else:
                    hollow = it.kind.endswith("-hollow")
                    svg.marker(x + 8, mid, it.kind.split("-")[0], it.colour, 6.0 if it.kind != "*" else 10.0,
                               hollow=hollow)
                svg.text(x + 22, y, it.label, fg, size, anchor="start")
                x += widths[c] + 12
            y += row_h + 2
