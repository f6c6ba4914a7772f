"""SVG charts with matplotlib's Figure API: a light and a dark variant, byte-identical for the same data.

Legible by construction: labels are never cut (they wrap), bars start at zero and carry the range of their
samples, legends sit below the axes, and margins are fitted to the text. Determinism: `svg.hashsalt` is the
chart id and the metadata Date/Creator are dropped. Text stays text (`svg.fonttype: none`), neutralised of
control characters (a NUL would make the SVG invalid XML). Each chart is drawn once, in the light palette;
the dark variant is the same SVG with the palette's colours swapped (unique hex strings, see THEMES). Drawn
charts are cached by content (`Deferred.key`), so a rebuild draws only what changed.
"""

from __future__ import annotations

import hashlib
import io
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from collector.cache import cache_dir
from collector.publish.escape import neutralize

# every light colour is unique and appears in the SVG only where the palette put it
THEMES = {
    "light": {"fg": "#1f2430", "grid": "#d0d4dc", "measured": "#3f51b5", "imported": "#e08a00", "front": "#c62828"},
    "dark": {"fg": "#e3e6ee", "grid": "#454b5a", "measured": "#8c9eff", "imported": "#ffb74d", "front": "#ff6e6e"},
}
LIGHT = THEMES["light"]
_CODE_STAMP = hashlib.sha256(Path(__file__).read_bytes() + mpl.__version__.encode()).digest()
MAX_BARS = 25  # a bar chart shows at most this many bars (the highest values); the table has the rest
MAX_LINES = 8
WRAP = 34  # characters per label line; longer labels wrap (never cut: cut labels collide)
WIDTH_IN = 6.4  # shown at most 640 px wide (phones: in a horizontally scrolling box of 560 px or more)
FONT_PT = 10
CHAR_IN = 0.074  # width of one 10 pt character, inches (about 5.3 pt)


@dataclass(frozen=True)
class Deferred:
    """A chart to draw later (possibly in another process): a module-level function and its arguments."""

    fn: Callable[..., dict[str, bytes]]
    args: tuple[Any, ...]

    def render(self) -> dict[str, bytes]:
        return self.fn(*self.args)

    def key(self) -> str:
        """Content address: this module's code, matplotlib's version, the function and its arguments."""
        h = hashlib.sha256(_CODE_STAMP)
        # repr, not pickle: pickle's bytes depend on which equal objects are shared (its memo), so equal
        # arguments built twice gave different keys and missed the cache
        h.update(repr((self.fn.__name__, self.args)).encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:32]

    def _paths(self) -> dict[str, Path]:
        folder, key = cache_dir("site/charts"), self.key()
        return {v: folder / f"{key}-{v}.svg" for v in THEMES}

    def cached(self) -> dict[str, bytes] | None:
        """The SVGs of an identical earlier chart, or None (also when QUANT_ATLAS_CACHE=0)."""
        if os.environ.get("QUANT_ATLAS_CACHE", "1") == "0":
            return None
        try:
            return {v: p.read_bytes() for v, p in self._paths().items()}
        except OSError:
            return None

    def render_cached(self) -> dict[str, bytes]:
        """render(), reusing the SVGs of an identical earlier chart (QUANT_ATLAS_CACHE=0 turns this off).

        Drawing is the slowest step of a build and `mkdocs serve` redraws everything for one new record;
        the key covers everything the bytes depend on, so a hit gives exactly what render() would."""
        hit = self.cached()
        if hit is not None:
            return hit
        svgs = self.render()
        if os.environ.get("QUANT_ATLAS_CACHE", "1") == "0":
            return svgs
        paths = self._paths()
        try:
            for v, p in paths.items():
                tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
                tmp.write_bytes(svgs[v])
                os.replace(tmp, p)
        except OSError:
            pass  # a cache that cannot be written only costs time
        return svgs


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


def wrap(label: str, width: int = WRAP) -> str:
    """A label on at most three lines (never cut, so two labels never become the same text)."""
    lines = textwrap.wrap(neutralize(label), width, break_on_hyphens=False) or [""]
    if len(lines) > 3:
        lines = lines[:2] + [" ".join(lines[2:])]
    return "\n".join(lines)


def _render(chart_id: str, width_in: float, height_in: float, draw: Callable[[Figure], None]) -> dict[str, bytes]:
    """Draw once (light palette), write SVG, derive the dark variant by swapping the palette's colours.

    Margins are fitted to the drawn text (layout="constrained"), so long labels and the legend below the axes
    always fit inside the picture."""
    t = LIGHT
    rc: dict[str, Any] = {
          "svg.hashsalt": chart_id, "svg.fonttype": "none", "font.size": FONT_PT, "font.family": "sans-serif",
          "text.color": t["fg"], "axes.labelcolor": t["fg"], "axes.edgecolor": t["fg"], "xtick.color": t["fg"],
          "ytick.color": t["fg"], "savefig.transparent": True, "grid.color": t["grid"], "grid.linewidth": 0.5,
          "axes.grid": True, "axes.axisbelow": True, "legend.frameon": False, "legend.fontsize": FONT_PT - 1}
    with mpl.rc_context(rc):  # type: ignore[arg-type]
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    light = buf.getvalue()
    dark = light
    for key, colour in LIGHT.items():
        dark = dark.replace(colour.encode(), THEMES["dark"][key].encode())
    return {"light": light, "dark": dark}


def _legend_below(fig: Figure, handles: list[Any]) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(3, len(handles)))


def _bar_chart(chart_id: str, panels: Sequence[tuple[str, Sequence[Bar]]]) -> dict[str, bytes]:
    """Horizontal bars from zero, one panel per (axis label, bars) sharing the labels of the first panel's
    order (highest first, at most MAX_BARS); error bars span each figure's range of samples."""
    first = panels[0][1]
    order = sorted(range(len(first)), key=lambda i: -first[i].value)[:MAX_BARS]
    names = [wrap(first[i].label) for i in order]
    any_imported = any(first[i].imported for i in order)
    any_range = any(p[1][i].lo is not None for p in panels for i in order)

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        ys = list(range(len(order)))[::-1]
        for ax, (xlabel, bars) in zip(axes, panels):
            sel = [bars[i] for i in order]
            colours = [LIGHT["imported"] if b.imported else LIGHT["measured"] for b in sel]
            ax.barh(ys, [b.value for b in sel], color=colours, height=0.7)
            lo = [b.value - b.lo if b.lo is not None else 0.0 for b in sel]
            hi = [b.hi - b.value if b.hi is not None else 0.0 for b in sel]
            if any(b.lo is not None for b in sel):
                ax.errorbar([b.value for b in sel], ys, xerr=[lo, hi], fmt="none", ecolor=LIGHT["fg"],
                            elinewidth=0.8, capsize=2)
            ax.set_xlim(left=0)  # bars start at zero: their lengths compare
            ax.set_xlabel(xlabel)
            ax.set_ylim(-0.6, len(order) - 0.4)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.set_yticks([])
        axes[0].set_yticks(ys, names)
        handles: list[Any] = []
        if any_imported:
            handles += [Patch(color=LIGHT["measured"], label="measured"),
                        Patch(color=LIGHT["imported"], label="imported (as the source states)")]
        if any_range:
            handles.append(Line2D([], [], color=LIGHT["fg"], linewidth=0.8, label="range of samples (min–max)"))
        _legend_below(fig, handles)
    rows_in = sum(max(0.3, 0.18 * (n.count("\n") + 1)) for n in names)
    height = 0.8 + rows_in + (0.3 * (1 + (any_imported and any_range)) if any_imported or any_range else 0)
    return _render(chart_id, WIDTH_IN, height, draw)


def _line_chart(chart_id: str, series: Sequence[tuple[str, Sequence[float], Sequence[float], Sequence[float],
                                                      Sequence[float]]], xlabel: str, ylabel: str) -> dict[str, bytes]:
    """One line per series (label, xs, ys, lows, highs), at most MAX_LINES, a band for the range of samples;
    the y axis starts at zero."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        handles = []
        for label, xs, ys, lo, hi in series[:MAX_LINES]:
            (line,) = ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=wrap(label, 44))
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
            handles.append(line)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.yaxis.set_major_locator(MaxNLocator(6))
        fig.legend(handles=handles, loc="outside lower center", ncols=1)
    n = min(len(series), MAX_LINES)
    return _render(chart_id, WIDTH_IN, 3.0 + 0.22 * n, draw)


Series = tuple[str, Sequence[float], Sequence[float], Sequence[float], Sequence[float]]  # label, xs, ys, lows, highs


def _panel_lines_chart(chart_id: str, panels: Sequence[tuple[str, Sequence[Series]]], xlabel: str,
                       xticks: Sequence[float], logx: bool = False, logy: bool = False) -> dict[str, bytes]:
    """Panels side by side sharing one x axis whose ticks are exactly `xticks` (each labelled once, as a whole
    number); one line per series (at most MAX_LINES, the same labels and colours in every panel), a band for
    the range of samples. y starts at zero, or is logarithmic with plain decimal labels when `logy`."""
    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        handles: list[Any] = []
        for k, (ax, (ylabel, series)) in enumerate(zip(axes, panels)):
            for i, (label, xs, ys, lo, hi) in enumerate(series[:MAX_LINES]):
                colour = f"C{i}"
                (line,) = ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color=colour,
                                  label=wrap(label, 44))
                ax.fill_between(xs, lo, hi, color=colour, alpha=0.15, linewidth=0)
                if k == 0:
                    handles.append(line)
            if logx:
                ax.set_xscale("log", base=2)
            ax.set_xticks(list(xticks), [f"{x:,.0f}" for x in xticks])
            ax.xaxis.set_minor_locator(NullLocator())
            if logy:
                ax.set_yscale("log")
                ax.yaxis.set_minor_locator(NullLocator())
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            else:
                ax.set_ylim(bottom=0)
                ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        fig.legend(handles=handles, loc="outside lower center", ncols=1)
    n = min(max(len(s) for _, s in panels), MAX_LINES)
    return _render(chart_id, WIDTH_IN, 3.0 + 0.22 * n, draw)


def _pareto_chart(chart_id: str, points: Sequence[Point], front: Sequence[int], xlabel: str, ylabel: str,
                  logx: bool = False) -> dict[str, bytes]:
    """Scatter of every point, the frontier joined by a line and its points labelled."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        handles: list[Any] = []
        for flag, name in ((False, "measured"), (True, "imported (as the source states)")):
            pts = [p for p in points if p.imported == flag]
            if pts:
                handles.append(ax.scatter([p.x for p in pts], [p.y for p in pts], s=18, zorder=3, label=name,
                                          color=LIGHT["imported" if flag else "measured"]))
        fpts = [points[i] for i in front]
        (line,) = ax.plot([p.x for p in fpts], [p.y for p in fpts], color=LIGHT["front"], linewidth=1, zorder=2,
                          label="Pareto frontier")
        handles.append(line)
        for p in fpts[:12]:
            ax.annotate(neutralize(p.label), (p.x, p.y), fontsize=FONT_PT - 2, xytext=(3, 3),
                        textcoords="offset points")
        if logx and all(p.x > 0 for p in points):
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())  # dozens of unlabelled minor ticks cost more than the data
        else:
            ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(6))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _legend_below(fig, handles)
    return _render(chart_id, WIDTH_IN, 3.6, draw)


def bar_chart(chart_id: str, panels: Sequence[tuple[str, Sequence[Bar]]]) -> Deferred:
    return Deferred(_bar_chart, (chart_id, [(a, list(b)) for a, b in panels]))


def line_chart(chart_id: str, series: Sequence[tuple[str, Sequence[float], Sequence[float], Sequence[float],
                                                     Sequence[float]]], xlabel: str, ylabel: str) -> Deferred:
    return Deferred(_line_chart, (chart_id, [(a, list(x), list(y), list(lo), list(hi)) for a, x, y, lo, hi in series],
                                  xlabel, ylabel))


def pareto_chart(chart_id: str, points: Sequence[Point], front: Sequence[int], xlabel: str, ylabel: str,
                 logx: bool = False) -> Deferred:
    return Deferred(_pareto_chart, (chart_id, list(points), list(front), xlabel, ylabel, logx))


def panel_lines_chart(chart_id: str, panels: Sequence[tuple[str, Sequence[Series]]], xlabel: str,
                      xticks: Sequence[float], logx: bool = False, logy: bool = False) -> Deferred:
    return Deferred(_panel_lines_chart, (chart_id, [(a, [(lb, list(x), list(y), list(lo), list(hi))
                                                         for lb, x, y, lo, hi in ser]) for a, ser in panels],
                                         xlabel, list(xticks), logx, logy))


def _history_chart(chart_id: str, panels: Sequence[tuple[str, Sequence[str], Sequence[float | None],
                                                      Sequence[float | None], Sequence[float | None],
                                                      Sequence[int]]]) -> dict[str, bytes]:
    """One panel per figure (ylabel, build labels, medians, lows, highs, indices of builds after a flagged change),
    stacked on one shared x axis: builds in build order, each labelled once (under the lowest panel); whiskers span
    the range of samples; a flagged change is a dashed line between the two builds. y starts at zero."""
    def draw(fig: Figure) -> None:
        axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
        handles: list[Any] = []
        for k, (ax, (ylabel, names, ys, lo, hi, steps)) in enumerate(zip(axes, panels)):
            pts = [(i, y, lo[i], hi[i]) for i, y in enumerate(ys) if y is not None]
            xs, vals = [p[0] for p in pts], [p[1] for p in pts]
            low = [y - (a if a is not None else y) for _, y, a, _ in pts]
            high = [(b if b is not None else y) - y for _, y, _, b in pts]
            (line,) = ax.plot(xs, vals, marker="o", markersize=4, linewidth=1.2, color=LIGHT["measured"])
            ax.errorbar(xs, vals, yerr=[low, high], fmt="none", ecolor=LIGHT["fg"], elinewidth=0.8, capsize=2)
            for i in steps:
                ax.axvline(i - 0.5, color=LIGHT["front"], linestyle="--", linewidth=1)
            top = max((y + h for y, h in zip(vals, high)), default=1.0)
            ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)  # the whiskers stay clear of the frame
            ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.set_ylabel(wrap(ylabel, 24))
            if k == len(panels) - 1:
                ax.set_xticks(list(range(len(names))), [neutralize(n) for n in names],
                              rotation=45 if len(names) > 6 else 0)
                ax.set_xlim(-0.5, len(names) - 0.5)
                ax.xaxis.set_minor_locator(NullLocator())
                ax.set_xlabel("llama.cpp build")
            else:
                ax.tick_params(axis="x", labelbottom=False)
            if not handles:
                handles.append(Line2D([], [], color=line.get_color(), marker="o", label="median; whiskers: range"))
        if any(p[5] for p in panels):
            handles.append(Line2D([], [], color=LIGHT["front"], linestyle="--", label="change beyond noise"))
        _legend_below(fig, handles)
    return _render(chart_id, WIDTH_IN, 1.4 + 1.9 * len(panels), draw)


def history_chart(chart_id: str, panels: Sequence[tuple[str, Sequence[str], Sequence[float | None],
                                                     Sequence[float | None], Sequence[float | None],
                                                     Sequence[int]]]) -> Deferred:
    return Deferred(_history_chart, (chart_id, [(a, list(n), list(y), list(lo), list(hi), list(s))
                                                for a, n, y, lo, hi, s in panels]))


@dataclass(frozen=True)
class Spot:
    """A measured configuration of a tune: memory (x), the objective's median (y) and its range of samples."""

    x: float
    y: float
    lo: float | None = None
    hi: float | None = None
    noisy: bool = False  # a trial measured on a busy host (hollow)


def _tune_chart(chart_id: str, xlabel: str, ylabel: str, budget: float, trials: Sequence[Spot],
                default: Spot | None, chosen: Spot | None, not_measured: Sequence[float],
                probes: Sequence[float]) -> dict[str, bytes]:
    """A tune's trials: speed against memory, the budget a vertical line, the default and the chosen marked; the
    trials stopped over the budget (x) and the load-only probes (o) on rows of their own below, at their memory,
    since they have no speed. y starts at zero; no point carries a text label (nothing to collide)."""
    rows = [(name, xs) for name, xs in (("trial over the budget:\nnot measured", not_measured),
                                        ("probe: load only,\nno speed", probes)) if xs]

    def whisker(ax: Any, s: Spot, colour: str) -> None:
        if s.lo is not None and s.hi is not None:
            ax.errorbar([s.x], [s.y], yerr=[[s.y - s.lo], [s.hi - s.y]], fmt="none", ecolor=colour,
                        elinewidth=0.8, capsize=2, zorder=2)

    def draw(fig: Figure) -> None:
        if rows:
            top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[4, 0.5 + 0.45 * len(rows)])
        else:
            top, bottom = fig.add_subplot(), None
        handles: list[Any] = []
        for s in trials:
            whisker(top, s, LIGHT["measured"])
        quiet, noisy = [s for s in trials if not s.noisy], [s for s in trials if s.noisy]
        if quiet:
            handles.append(top.scatter([s.x for s in quiet], [s.y for s in quiet], s=22, zorder=3,
                                       color=LIGHT["measured"], label="trial (median; whiskers: range)"))
        if noisy:
            handles.append(top.scatter([s.x for s in noisy], [s.y for s in noisy], s=22, zorder=3,
                                       facecolors="none", edgecolors=LIGHT["measured"],
                                       label="trial on a busy host (noisy)"))
        if default is not None:
            whisker(top, default, LIGHT["fg"])
            handles.append(top.scatter([default.x], [default.y], s=70, marker="s", facecolors="none", zorder=4,
                                       edgecolors=LIGHT["fg"], linewidths=1.4, label="default command"))
        if chosen is not None:
            whisker(top, chosen, LIGHT["front"])
            handles.append(top.scatter([chosen.x], [chosen.y], s=130, marker="*", zorder=5, color=LIGHT["front"],
                                       label="chosen command"))
        for ax in (top, bottom):
            if ax is not None:
                ax.axvline(budget, color=LIGHT["imported"], linestyle="--", linewidth=1.2, zorder=1)
        handles.append(Line2D([], [], color=LIGHT["imported"], linestyle="--", label=f"memory budget {budget:g} MiB"))
        top.set_ylim(bottom=0)
        top.yaxis.set_major_locator(MaxNLocator(5))
        top.set_ylabel(ylabel)
        xs = [budget, *(s.x for s in trials), *(s.x for s in (default, chosen) if s is not None),
              *not_measured, *probes]
        pad = (max(xs) - min(xs)) * 0.06 or max(xs) * 0.05 or 1.0
        top.set_xlim(min(xs) - pad, max(xs) + pad)
        top.xaxis.set_major_locator(MaxNLocator(6))
        if bottom is None:
            top.set_xlabel(xlabel)
        else:
            top.tick_params(axis="x", labelbottom=False)
            markers = {0: ("x", LIGHT["fg"]), 1: ("o", LIGHT["measured"])}
            for i, (name, vals) in enumerate(rows):
                kind = 0 if name.startswith("trial") else 1
                marker, colour = markers[kind]
                y = len(rows) - 1 - i
                if kind == 0:
                    bottom.scatter(vals, [y] * len(vals), marker=marker, s=40, color=colour, zorder=3)
                else:
                    bottom.scatter(vals, [y] * len(vals), marker=marker, s=22, facecolors="none",
                                   edgecolors=colour, zorder=3)
            bottom.set_yticks([len(rows) - 1 - i for i in range(len(rows))], [n for n, _ in rows],
                              fontsize=FONT_PT - 2)
            bottom.set_ylim(-0.6, len(rows) - 0.4)
            bottom.grid(axis="y", visible=False)
            bottom.set_xlabel(xlabel)
        _legend_below(fig, handles)
    return _render(chart_id, WIDTH_IN, 3.9 + 0.35 * len(rows), draw)


def tune_chart(chart_id: str, xlabel: str, ylabel: str, budget: float, trials: Sequence[Spot],
               default: Spot | None, chosen: Spot | None, not_measured: Sequence[float],
               probes: Sequence[float]) -> Deferred:
    return Deferred(_tune_chart, (chart_id, xlabel, ylabel, budget, list(trials), default, chosen,
                                  sorted(not_measured), sorted(probes)))
