"""The site's SVG charts: a light and a dark variant, byte-identical for the same data.

Legible by construction: labels are never cut (they wrap), bars start at zero and carry the range of their
samples, legends sit below the axes, and margins are computed from the text's measured widths (svgplot: SVG
written directly, matplotlib's tick locators and font metrics; matplotlib's own drawing took ~0.24 CPU-s per
chart, more than half of a cold build at 10,000 records). Text stays text, neutralised of control characters
(a NUL would make the SVG invalid XML) and XML-escaped. Each chart is drawn once, in the light palette; the dark
variant is the same SVG with the palette's colours swapped (unique hex strings, swapped as attribute values only,
never inside text). A chart takes about a millisecond: they are not cached apart from the whole build.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec

from collector.publish.charts.svgplot import (
    CYCLE,
    FONT_PT,
    PAD,
    TICK,
    Axes,
    Item,
    Scale,
    Svg,
    category,
    fit,
    fixed,
    legend,
    legend_layout,
    linear,
    logarithmic,
    overlaps,
    text_height,
    text_width,
    xtick_band,
    ytick_band,
)
from collector.publish.words.escape import neutralize

P = ParamSpec("P")

# every light colour is unique and appears in the SVG only where the palette put it
THEMES = {
    "light": {"fg": "#1f2430", "grid": "#d0d4dc", "measured": "#3f51b5", "imported": "#e08a00", "front": "#c62828"},
    "dark": {"fg": "#e3e6ee", "grid": "#454b5a", "measured": "#8c9eff", "imported": "#ffb74d", "front": "#ff6e6e"},
}
LIGHT = THEMES["light"]
MAX_BARS = 25  # a bar chart shows at most this many bars (the highest values); the table has the rest
MAX_LINES = 8
WRAP = 34  # characters per label line; longer labels wrap (never cut: cut labels collide)
WIDTH_IN = 6.4  # shown at most 640 px wide (phones: in a horizontally scrolling box of 560 px or more)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    imported: bool = False


@dataclass(frozen=True)
class Bar:
    """One bar: the value, its range of samples (None: a single figure) and whether a source stated it."""

    label: str
    value: float
    lo: float | None = None
    hi: float | None = None
    imported: bool = False


def wrap(label: str, width: int | None = None) -> str:
    """A label on at most three lines (never cut, so two labels never become the same text)."""
    width = width or WRAP
    lines = textwrap.wrap(neutralize(label), width, break_on_hyphens=False) or [""]
    if len(lines) > 3:
        lines = lines[:2] + [" ".join(lines[2:])]
    return "\n".join(lines)


W = WIDTH_IN * 72  # figure width, pt
# A phone's variant of every chart: drawn at the width of a phone's content column (357 px at 390), so its text is
# shown at its size (FONT_PT: 13 px) instead of scaled down to ~7 px; labels wrap sooner
PHONE_W, PHONE_WRAP = 268.0, 20


def two_widths(draw: Callable[P, dict[str, bytes]]) -> Callable[P, dict[str, bytes]]:
    """A chart function that also draws its phone variant: {light, dark, phone-light, phone-dark} (empty stays
    empty). The layout reads the module's W and WRAP when it draws, so the variant is the same code at
    another width."""
    @functools.wraps(draw)
    def both(*args: P.args, **kwargs: P.kwargs) -> dict[str, bytes]:
        global W, WRAP
        wide = draw(*args, **kwargs)
        if not wide:
            return wide
        saved = W, WRAP
        W, WRAP = PHONE_W, PHONE_WRAP
        try:
            phone = draw(*args, **kwargs)
        finally:
            W, WRAP = saved
        return {**wide, **{f"phone-{k}": v for k, v in phone.items()}}
    return both
FG, GRID = LIGHT["fg"], LIGHT["grid"]
LEGEND_PT = FONT_PT - 1


def _finish(svg: Svg) -> dict[str, bytes]:
    """The light SVG and its dark variant (the palette's colours swapped)."""
    light = svg.bytes()
    dark = light
    for key, colour in LIGHT.items():  # quoted: every colour is an attribute value, text has no bare quote
        dark = dark.replace(f'"{colour}"'.encode(), f'"{THEMES["dark"][key]}"'.encode())
    return {"light": light, "dark": dark}


def _figure(axes_h: float, band: float, items: Sequence[Item], ncols: int, top: float = PAD + 6) -> tuple[Svg, float]:
    """A figure of the chart's width holding axes `axes_h` tall from `top`, `band` below them for ticks and the
    axis label, and the legend under that; returns it and where the legend starts."""
    _, _, legend_h = legend_layout(items, ncols, W - 2 * PAD, LEGEND_PT)
    legend_top = top + axes_h + band + PAD
    return Svg(W, legend_top + legend_h + (PAD if items else 0)), legend_top


def _ylabel(svg: Svg, x: float, axes: Axes, label: str) -> None:
    """The y axis label, turned a quarter anticlockwise, its block's left edge at x."""
    svg.text(x + text_height(label) / 2, axes.y + axes.h / 2, label, FG, anchor="middle", valign="middle",
             rotate=90)


def _xlabel(svg: Svg, ax: Axes, label: str, rotate: float = 0.0) -> None:
    """The x axis label, centred under the axes' tick labels."""
    svg.text(ax.x + ax.w / 2, ax.y + ax.h + xtick_band(ax.xs, rotate) + 2, label, FG)


def _axis_labels(svg: Svg, ax: Axes, xlabel: str, ylabel: str, ylabel_x: float) -> None:
    """Both axes' ticks with their labels, and the two axis labels (the y label's block from ylabel_x)."""
    ax.xticks(FG)
    ax.yticks(FG)
    _xlabel(svg, ax, xlabel)
    _ylabel(svg, ylabel_x, ax, ylabel)


def _right_room(scale: Scale) -> float:
    """Room right of the axes for half the last x tick label (it is centred on its tick)."""
    return max(PAD, text_width(scale.ticks[-1][1]) / 2 + 2) if scale.ticks else PAD


@two_widths
def bar_chart(panels: Sequence[tuple[str, Sequence[Bar]]]) -> dict[str, bytes]:
    """Horizontal bars from zero, one panel per (axis label, bars) sharing the labels of the first panel's
    order (highest first, at most MAX_BARS); error bars span each figure's range of samples."""
    first = panels[0][1]
    order = sorted(range(len(first)), key=lambda i: -first[i].value)[:MAX_BARS]
    names = [wrap(first[i].label) for i in order]
    any_imported = any(first[i].imported for i in order)
    any_range = any(p[1][i].lo is not None for p in panels for i in order)
    items: list[Item] = []
    if any_imported:  # the colour key, with the measured swatch only where a bar is measured
        items += [Item("measured", "patch", LIGHT["measured"])] if not all(first[i].imported for i in order) else []
        items.append(Item("imported (as the source states)", "patch", LIGHT["imported"]))
    if any_range:
        items.append(Item("range of samples (min–max)", "line", FG))
    rows = [max(21.6, text_height(n) + 6) for n in names]  # each label fits its row
    scales = [linear([0.0, *(max(b.value, b.hi or 0.0) for b in (bars[i] for i in order))], nbins=4, zero=True,
                     margin=0.05) for _, bars in panels]
    band = max(xtick_band(sc) for sc in scales) + 2 + max(text_height(xl) for xl, _ in panels)
    svg, legend_top = _figure(sum(rows), band, items, 3)
    left = PAD + max(text_width(n) for n in names) + TICK + 3
    gap = 16.0
    width = (W - left - _right_room(scales[-1]) - gap * (len(panels) - 1)) / len(panels)
    top = PAD + 6
    for k, ((xlabel, bars), sc) in enumerate(zip(panels, scales)):
        ax = Axes(svg, left + k * (width + gap), top, width, sum(rows), sc, Scale(0, 1, False, []))
        with svg.group(f"axes_{k + 1}"):
            ax.frame(FG, GRID, ygrid=False)
            ax.xticks(FG)
            y = top
            for j, (row_h, i) in enumerate(zip(rows, order)):
                b = bars[i]
                thick = min(0.7 * row_h, 15.0)
                mid = y + row_h / 2
                svg.rect(ax.x, mid - thick / 2, ax.px(b.value) - ax.x, thick,
                         LIGHT["imported"] if b.imported else LIGHT["measured"])
                if b.lo is not None and b.hi is not None:
                    svg.whisker(ax.px(b.lo), mid, ax.px(b.hi), mid, FG)
                if k == 0:
                    with svg.group(f"ytick_{j + 1}"):
                        svg.line([(ax.x - TICK, mid), (ax.x, mid)], FG, 0.8)
                        svg.text(ax.x - TICK - 3, mid, names[j], FG, anchor="end", valign="middle")
                y += row_h
            _xlabel(svg, ax, xlabel)
    legend(svg, items, 3, legend_top, FG, LEGEND_PT)
    return _finish(svg)


def _series_legend(series: Sequence[tuple[str, Any, Any, Any, Any]]) -> list[Item]:
    return [Item(wrap(label, WRAP + 10), "line+o", CYCLE[i % len(CYCLE)]) for i, (label, *_) in enumerate(series)]


def _draw_series(ax: Axes, series: Sequence[tuple[str, Sequence[float], Sequence[float], Sequence[float],
                                                  Sequence[float]]]) -> None:
    """Per series: the band of its range of samples, its line, a dot per point."""
    for i, (_, xs, ys, lo, hi) in enumerate(series):
        colour = CYCLE[i % len(CYCLE)]
        band = [(ax.px(x), ax.py(v)) for x, v in zip(xs, hi)] + [(ax.px(x), ax.py(v)) for x, v in
                                                                   reversed(list(zip(xs, lo)))]
        ax.svg.area(band, colour, 0.15)
        pts = [(ax.px(x), ax.py(y)) for x, y in zip(xs, ys)]
        ax.svg.line(pts, colour, 1.2)
        for x, y in pts:
            ax.svg.marker(x, y, "o", colour, 3.0)


@two_widths
def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float], Sequence[float],
                                                      Sequence[float]]], xlabel: str, ylabel: str) -> dict[str, bytes]:
    """One line per series (label, xs, ys, lows, highs), at most MAX_LINES, a band for the range of samples;
    the y axis starts at zero."""
    shown = list(series[:MAX_LINES])
    xs = linear([x for s in shown for x in s[1]], nbins=6)
    ys = linear([v for s in shown for v in (*s[2], *s[3], *s[4])], nbins=6, zero=True)
    items = _series_legend(shown)
    band = xtick_band(xs) + 2 + text_height(xlabel)
    ylabel = fit(ylabel, 170.0)
    svg, legend_top = _figure(170.0, band, items, 1)
    left = PAD + text_height(ylabel) + 4 + ytick_band(ys)
    ax = Axes(svg, left, PAD + 6, W - left - _right_room(xs), 170.0, xs, ys)
    with svg.group("axes_1"):
        ax.frame(FG, GRID)
        _draw_series(ax, shown)
        _axis_labels(svg, ax, xlabel, ylabel, PAD)
    legend(svg, items, 1, legend_top, FG, LEGEND_PT)
    return _finish(svg)


Series = tuple[str, Sequence[float], Sequence[float], Sequence[float], Sequence[float]]  # label, xs, ys, lows, highs


@two_widths
def panel_lines_chart(panels: Sequence[tuple[str, Sequence[Series]]], xlabel: str,
                       xticks: Sequence[float], logx: bool = False, logy: bool = False) -> dict[str, bytes]:
    """Panels side by side sharing one x axis whose ticks are exactly `xticks` (each labelled once, as a whole
    number); one line per series (at most MAX_LINES, the same labels and colours in every panel), a band for
    the range of samples. y starts at zero, or is logarithmic with plain decimal labels when `logy`."""
    xs = fixed([x for _, ser in panels for s in ser[:MAX_LINES] for x in s[1]], xticks, 2.0 if logx else None)
    yscales = []
    for _, ser in panels:
        vals = [v for s in ser[:MAX_LINES] for v in (*s[2], *s[3], *s[4])]
        yscales.append(logarithmic(vals) if logy else linear(vals, nbins=5, zero=True))
    items = _series_legend(max((ser[:MAX_LINES] for _, ser in panels), key=len))
    band = xtick_band(xs) + 2 + text_height(xlabel)
    svg, legend_top = _figure(160.0, band, items, 1)
    slot = (W - PAD - _right_room(xs)) / len(panels)
    for k, ((name, ser), ys) in enumerate(zip(panels, yscales)):
        ylabel = fit(name, 160.0)
        inset = text_height(ylabel) + 4 + ytick_band(ys)
        x0 = PAD + k * slot
        ax = Axes(svg, x0 + inset, PAD + 6, slot - inset - (14 if k < len(panels) - 1 else 0), 160.0, xs, ys)
        with svg.group(f"axes_{k + 1}"):
            ax.frame(FG, GRID)
            _draw_series(ax, list(ser[:MAX_LINES]))
            _axis_labels(svg, ax, xlabel, ylabel, x0)
    legend(svg, items, 1, legend_top, FG, LEGEND_PT)
    return _finish(svg)


MAX_LABELS = 24  # points labelled on a scatter (the table names every point)


def place_labels(svg: Svg, ax: Axes, labels: Sequence[tuple[float, float, str]],
                 markers: Sequence[tuple[float, float]], size: float = FONT_PT - 2) -> None:
    """Each label beside its point, at the first of 8 positions around it (further out ring by ring) where it stays
    inside the axes and covers no other label and no marker; a label that finds none is joined to its point by a
    thin line from the nearest free spot; when there is none at all, the point stays unlabelled (the table names
    it). Points are labelled in the order given."""
    r = 3.0
    taken = [(x - r, y - r, x + r, y + r) for x, y in markers]
    placed: list[tuple[float, float, float, float]] = []
    for cx, cy, label in labels:
        w, h = text_width(label, size), text_height(label, size)
        own = (cx - r, cy - r, cx + r, cy + r)
        spot = None
        for ring in (3.0, 9.0, 16.0, 26.0, 40.0):
            for dx, dy in ((ring, -ring - h), (-ring - w, -ring - h), (ring, ring), (-ring - w, ring),
                           (ring, -h / 2), (-ring - w, -h / 2), (-w / 2, -ring - h), (-w / 2, ring)):
                x0, y0 = cx + dx, cy + dy
                box = (x0, y0, x0 + w, y0 + h)
                if (ax.x <= x0 and x0 + w <= ax.x + ax.w and ax.y <= y0 and y0 + h <= ax.y + ax.h
                        and not any(overlaps(box, o) for o in placed)
                        and not any(overlaps(box, m) for m in taken if m != own)):
                    spot = (x0, y0, ring)
                    break
            if spot:
                break
        if spot is None:
            continue
        x0, y0, ring = spot
        placed.append((x0, y0, x0 + w, y0 + h))
        if ring > 9.0:  # far from its point: a leader line says which point it names
            ex = min(max(cx, x0), x0 + w)
            ey = min(max(cy, y0), y0 + h)
            svg.line([(cx, cy), (ex, ey)], FG, 0.4)
        svg.text(x0, y0, label, FG, size, anchor="start", valign="top")


@two_widths
def pareto_chart(points: Sequence[Point], front: Sequence[int], xlabel: str, ylabel: str,
                  logx: bool = False, zero_x: bool = True) -> dict[str, bytes]:
    """Scatter of every point (each labelled where its label fits), the frontier joined by a line. `zero_x` False
    starts a linear x axis at the data, not at zero (sizes of one model's files: no empty width)."""
    items: list[Item] = []
    for flag, name in ((False, "measured"), (True, "imported (as the source states)")):
        if any(p.imported == flag for p in points):
            items.append(Item(name, "o", LIGHT["imported" if flag else "measured"]))
    items.append(Item("Pareto frontier", "line", LIGHT["front"]))
    use_log = logx and all(p.x > 0 for p in points)
    # room around the points for their labels: a label never leaves the axes
    xs = (logarithmic([p.x for p in points], margin=0.1) if use_log else
          linear([p.x for p in points], nbins=6, zero=zero_x, margin=0.1))
    ys = linear([p.y for p in points], nbins=6, zero=True, margin=0.14)
    band = xtick_band(xs) + 2 + text_height(xlabel)
    axes_h = 3.6 * 72 - 80
    ylabel = fit(ylabel, axes_h)
    svg, legend_top = _figure(axes_h, band, items, 3)
    left = PAD + text_height(ylabel) + 4 + ytick_band(ys)
    ax = Axes(svg, left, PAD + 6, W - left - _right_room(xs), axes_h, xs, ys)
    fpts = [points[i] for i in front]
    with svg.group("axes_1"):
        ax.frame(FG, GRID)
        svg.line([(ax.px(p.x), ax.py(p.y)) for p in fpts], LIGHT["front"], 1.0)
        for p in points:
            svg.marker(ax.px(p.x), ax.py(p.y), "o", LIGHT["imported" if p.imported else "measured"], 4.2)
        first = [*front, *(i for i in range(len(points)) if i not in set(front))]  # the front's labels first
        place_labels(svg, ax, [(ax.px(points[i].x), ax.py(points[i].y), neutralize(points[i].label))
                               for i in first[:MAX_LABELS]], [(ax.px(p.x), ax.py(p.y)) for p in points])
        _axis_labels(svg, ax, xlabel, ylabel, PAD)
    legend(svg, items, 3, legend_top, FG, LEGEND_PT)
    return _finish(svg)






@two_widths
def identity_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], xlabel: str,
                   ylabel: str) -> dict[str, bytes]:
    """Estimate against measurement: one hollow marker per (measured, estimated) pair, a colour per series, both
    axes logarithmic over the same range so the dashed line y = x (a perfect estimate) is the diagonal."""
    values = [v for _, pts in series for pt in pts for v in pt if v > 0]
    scale = logarithmic(values or [1.0, 10.0])
    items = [Item(f"{name} ({len(pts)})", "o-hollow", CYCLE[i % len(CYCLE)]) for i, (name, pts) in enumerate(series)]
    items.append(Item("estimate = measurement", "dashed", FG))
    side = 3.4 * 72
    band = xtick_band(scale) + 2 + text_height(xlabel)
    ylabel = fit(ylabel, side)
    svg, legend_top = _figure(side, band, items, 2)
    left = PAD + text_height(ylabel) + 4 + ytick_band(scale)
    ax = Axes(svg, left, PAD + 6, min(side, W - left - _right_room(scale)), side, scale, scale)
    lo, hi = scale.lo, scale.hi
    with svg.group("axes_1"):
        ax.frame(FG, GRID)
        svg.line([(ax.px(lo), ax.py(lo)), (ax.px(hi), ax.py(hi))], FG, 0.8, dash="4,3")
        for i, (_, pts) in enumerate(series):
            for x, y in pts:
                if x > 0 and y > 0:
                    svg.marker(ax.px(x), ax.py(y), "o", CYCLE[i % len(CYCLE)], 4.0, hollow=True)
        _axis_labels(svg, ax, xlabel, ylabel, PAD)
    legend(svg, items, 2, legend_top, FG, LEGEND_PT)
    return _finish(svg)


@two_widths
def history_chart(panels: Sequence[tuple[str, Sequence[str], Sequence[float | None],
                                                      Sequence[float | None], Sequence[float | None],
                                                      Sequence[int]]]) -> dict[str, bytes]:
    """One panel per figure (ylabel, build labels, medians, lows, highs, indices of builds after a flagged change),
    stacked on one shared x axis: builds in build order, each labelled once (under the lowest panel); whiskers span
    the range of samples; a flagged change is a dashed line between the two builds. y starts at zero."""
    names = [neutralize(n) for n in panels[-1][1]]
    xs = category(len(names), names)
    rotate = 45.0 if len(names) > 6 else 0.0
    items = [Item("median; whiskers: range", "line+o", LIGHT["measured"])]
    if any(p[5] for p in panels):
        items.append(Item("change beyond noise", "dashed", LIGHT["front"]))
    scales = []
    for _, _, ys, _lo, hi, _ in panels:
        top_v = max((b if b is not None else y for y, b in zip(ys, hi) if y is not None), default=1.0)
        scales.append(linear([], nbins=5, view=(0.0, top_v * 1.12 if top_v > 0 else 1.0)))
    panel_h, gap = 1.9 * 72 - 20, 10.0
    labels = [fit(p[0], panel_h) for p in panels]
    left = PAD + max(text_height(lb) for lb in labels) + 4 + max(ytick_band(sc) for sc in scales)
    band = xtick_band(xs, rotate) + 2 + text_height("llama.cpp build")
    svg, legend_top = _figure(len(panels) * panel_h + (len(panels) - 1) * gap, band, items, 3)
    right = max(PAD, 0.0 if rotate else text_width(names[-1]) / 2 + 2)
    for k, ((_, _, ys, lo, hi, steps), sc, label) in enumerate(zip(panels, scales, labels)):
        ax = Axes(svg, left, PAD + 6 + k * (panel_h + gap), W - left - right, panel_h, xs, sc)
        last = k == len(panels) - 1
        with svg.group(f"axes_{k + 1}"):
            ax.frame(FG, GRID)
            for i in steps:
                svg.line([(ax.px(i - 0.5), ax.y), (ax.px(i - 0.5), ax.y + ax.h)], LIGHT["front"], 1.0, "4,2")
            pts = [(i, y, lo[i], hi[i]) for i, y in enumerate(ys) if y is not None]
            for i, y, a, b in pts:
                if a is not None or b is not None:
                    svg.whisker(ax.px(i), ax.py(a if a is not None else y), ax.px(i), ax.py(b if b is not None else y),
                                FG)
            svg.line([(ax.px(i), ax.py(y)) for i, y, _, _ in pts], LIGHT["measured"], 1.2)
            for i, y, _, _ in pts:
                svg.marker(ax.px(i), ax.py(y), "o", LIGHT["measured"], 4.0)
            ax.xticks(FG, labels=last, rotate=rotate)
            ax.yticks(FG)
            _ylabel(svg, PAD, ax, label)
            if last:
                _xlabel(svg, ax, "llama.cpp build", rotate)
    legend(svg, items, 3, legend_top, FG, LEGEND_PT)
    return _finish(svg)



@dataclass(frozen=True)
class Spot:
    """A measured configuration of a tune: memory (x), the objective's median (y) and its range of samples."""

    x: float
    y: float
    lo: float | None = None
    hi: float | None = None
    noisy: bool = False  # a trial measured on a busy host (hollow)


@two_widths
def tune_chart(xlabel: str, ylabel: str, budget: float, trials: Sequence[Spot], default: Spot | None,
               chosen: Spot | None, not_measured: Sequence[float], probes: Sequence[float]) -> dict[str, bytes]:
    """A tune's trials: speed against memory, the budget a vertical line, the default and the chosen marked; the
    trials stopped over the budget (x) and the load-only probes (o) on rows of their own below, at their memory,
    since they have no speed. y starts at zero; no point carries a text label (nothing to collide)."""
    rows = [(name, sorted(vals)) for name, vals in (("trial over the budget:\nnot measured", not_measured),
                                                    ("probe: load only,\nno speed", probes)) if vals]
    quiet, noisy = [s for s in trials if not s.noisy], [s for s in trials if s.noisy]
    items: list[Item] = []
    if quiet:
        items.append(Item("trial (median; whiskers: range)", "o", LIGHT["measured"]))
    if noisy:
        items.append(Item("trial on a busy host (noisy)", "o-hollow", LIGHT["measured"]))
    if default is not None:
        items.append(Item("default command", "s-hollow", FG))
    if chosen is not None:
        items.append(Item("chosen command", "*", LIGHT["front"]))
    items.append(Item(f"memory budget {budget:g} MiB", "dashed", LIGHT["imported"]))
    spots = [*trials, *(s for s in (default, chosen) if s is not None)]
    xvals = [budget, *(s.x for s in spots), *not_measured, *probes]
    pad = (max(xvals) - min(xvals)) * 0.06 or max(xvals) * 0.05 or 1.0
    xs = linear([], nbins=6, view=(min(xvals) - pad, max(xvals) + pad))
    ys = linear([v for s in spots for v in (s.y, s.hi) if v is not None], nbins=5, zero=True)
    row_names = Scale(-0.6, len(rows) - 0.4, False, [(float(len(rows) - 1 - i), n) for i, (n, _) in enumerate(rows)])
    top_h = 190.0
    bottom_h = (30.0 + 26.0 * len(rows)) if rows else 0.0
    gap = 8.0 if rows else 0.0
    band = xtick_band(xs) + 2 + text_height(xlabel)
    svg, legend_top = _figure(top_h + gap + bottom_h, band, items, 3)
    ylabel = fit(ylabel, top_h)
    left = PAD + max(text_height(ylabel) + 4 + ytick_band(ys),
                     max((text_width(n, FONT_PT - 2) for n, _ in rows), default=0.0) + TICK + 3)
    width = W - left - _right_room(xs)
    top = Axes(svg, left, PAD + 6, width, top_h, xs, ys)

    def whisker(s: Spot, colour: str) -> None:
        if s.lo is not None and s.hi is not None:
            svg.whisker(top.px(s.x), top.py(s.lo), top.px(s.x), top.py(s.hi), colour)

    with svg.group("axes_1"):
        top.frame(FG, GRID)
        svg.line([(top.px(budget), top.y), (top.px(budget), top.y + top.h)], LIGHT["imported"], 1.2, "4,2")
        for s in trials:
            whisker(s, LIGHT["measured"])
        for s in trials:
            svg.marker(top.px(s.x), top.py(s.y), "o", LIGHT["measured"], 4.7, hollow=s.noisy)
        if default is not None:
            whisker(default, FG)
            svg.marker(top.px(default.x), top.py(default.y), "s", FG, 8.4, hollow=True, edge=1.4)
        if chosen is not None:
            whisker(chosen, LIGHT["front"])
            svg.marker(top.px(chosen.x), top.py(chosen.y), "*", LIGHT["front"], 14.0)
        top.xticks(FG, labels=not rows)
        top.yticks(FG)
        _ylabel(svg, PAD, top, ylabel)
    axis_bottom = top
    if rows:
        bottom = Axes(svg, left, top.y + top_h + gap, width, bottom_h, xs, row_names)
        with svg.group("axes_2"):
            bottom.frame(FG, GRID, ygrid=False)
            svg.line([(bottom.px(budget), bottom.y), (bottom.px(budget), bottom.y + bottom.h)], LIGHT["imported"],
                     1.2, "4,2")
            for i, (name, vals) in enumerate(rows):
                y = bottom.py(len(rows) - 1 - i)
                for v in vals:
                    if name.startswith("trial"):
                        svg.marker(bottom.px(v), y, "x", FG, 6.3)
                    else:
                        svg.marker(bottom.px(v), y, "o", LIGHT["measured"], 4.7, hollow=True)
            bottom.xticks(FG)
            bottom.yticks(FG, size=FONT_PT - 2)
        axis_bottom = bottom
    _xlabel(svg, axis_bottom, xlabel)
    legend(svg, items, 3, legend_top, FG, LEGEND_PT)
    return _finish(svg)

