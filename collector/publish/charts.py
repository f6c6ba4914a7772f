"""SVG charts with matplotlib's Figure API: a light and a dark variant, byte-identical for the same data.

Determinism: `svg.hashsalt` is the chart id (stable clip-path/marker ids) and the metadata Date/Creator are
dropped. Text is kept as text (`svg.fonttype: none`): smaller, faster, selectable. Speed: each chart is drawn
once, in the light palette; the dark variant is the same SVG with the palette's colours swapped (the colours
are unique hex strings, see THEMES), and margins are fixed rather than solved by a layout engine. Charts
dominate build time, so this halves it twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullLocator

from collector.cache import cache_dir

# every light colour is unique and appears in the SVG only where the palette put it
THEMES = {
    "light": {"fg": "#1f2430", "grid": "#d0d4dc", "measured": "#3f51b5", "imported": "#e08a00", "front": "#c62828"},
    "dark": {"fg": "#e3e6ee", "grid": "#454b5a", "measured": "#8c9eff", "imported": "#ffb74d", "front": "#ff6e6e"},
}
LIGHT = THEMES["light"]
_CODE_STAMP = hashlib.sha256(Path(__file__).read_bytes() + mpl.__version__.encode()).digest()
MAX_BARS = 25  # a bar chart shows at most this many bars (the highest values); the table has the rest
MAX_LINES = 8
LABEL_CHARS = 46
WIDTH_IN = 7.0
CHAR_FRACTION = 0.0098  # width of one 9 pt character as a share of the 7 in figure (about 5 pt)


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
        h.update(pickle.dumps((self.fn.__name__, self.args), protocol=5))
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


def _short(label: str, n: int = LABEL_CHARS) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _render(chart_id: str, height_in: float, left: float, draw: Callable[[Figure], None]) -> dict[str, bytes]:
    """Draw once (light palette), write SVG, derive the dark variant by swapping the palette's colours."""
    t = LIGHT
    rc = {"svg.hashsalt": chart_id, "svg.fonttype": "none", "font.size": 9, "font.family": "sans-serif",
          "text.color": t["fg"], "axes.labelcolor": t["fg"], "axes.edgecolor": t["fg"], "xtick.color": t["fg"],
          "ytick.color": t["fg"], "savefig.transparent": True, "grid.color": t["grid"], "grid.linewidth": 0.5,
          "axes.grid": True, "axes.axisbelow": True, "legend.frameon": False, "legend.fontsize": 7}
    with mpl.rc_context(rc):
        fig = Figure(figsize=(WIDTH_IN, height_in))
        bottom = min(0.45, 0.5 / height_in)
        fig.subplots_adjust(left=left, right=0.97, top=1 - min(0.3, 0.15 / height_in), bottom=bottom, wspace=0.08)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    light = buf.getvalue()
    dark = light
    for key, colour in LIGHT.items():
        dark = dark.replace(colour.encode(), THEMES["dark"][key].encode())
    return {"light": light, "dark": dark}


def _legend_sources(ax: Axes, any_imported: bool) -> None:
    if any_imported:
        ax.legend(handles=[Patch(color=LIGHT["measured"], label="measured"),
                           Patch(color=LIGHT["imported"], label="imported (published source)")], loc="lower right")


def _bar_chart(chart_id: str, labels: Sequence[str], panels: Sequence[tuple[str, Sequence[float | None]]],
              imported: Sequence[bool]) -> dict[str, bytes]:
    """Horizontal bars, one panel per (axis label, values) sharing the labels; ordered by the first panel,
    highest first, capped at MAX_BARS. A None value draws no bar."""
    first = panels[0][1]
    order = sorted(range(len(labels)), key=lambda i: -(first[i] or 0.0))[:MAX_BARS]
    names = [_short(labels[i]) for i in order]
    left = min(0.6, 0.03 + CHAR_FRACTION * max((len(n) for n in names), default=4))

    def draw(fig: Figure) -> None:
        # not sharey: a shared axis would build (hidden) tick labels for every panel, and ticks are the cost
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        ys = list(range(len(order)))[::-1]
        colours = [LIGHT["imported"] if imported[i] else LIGHT["measured"] for i in order]
        for ax, (xlabel, values) in zip(axes, panels):
            ax.barh(ys, [values[i] or 0.0 for i in order], color=colours)
            ax.set_xlabel(xlabel)
            ax.set_ylim(-0.6, len(order) - 0.4)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_yticks([])
        axes[0].set_yticks(ys, names)
        _legend_sources(axes[-1], any(imported[i] for i in order))
    return _render(chart_id, 0.8 + 0.2 * max(len(order), 2), left, draw)


def _line_chart(chart_id: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], xlabel: str,
               ylabel: str) -> dict[str, bytes]:
    """One line per series (label, xs, ys), at most MAX_LINES."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for label, xs, ys in series[:MAX_LINES]:
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=_short(label))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.yaxis.set_major_locator(MaxNLocator(6))
        ax.legend(loc="best")
    return _render(chart_id, 3.4, 0.1, draw)


def _pareto_chart(chart_id: str, points: Sequence[Point], front: Sequence[int], xlabel: str, ylabel: str,
                 logx: bool = False) -> dict[str, bytes]:
    """Scatter of every point, the frontier joined by a line and labelled."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for flag, name in ((False, "measured"), (True, "imported (published source)")):
            pts = [p for p in points if p.imported == flag]
            if pts:
                ax.scatter([p.x for p in pts], [p.y for p in pts], s=18, zorder=3, label=name,
                           color=LIGHT["imported" if flag else "measured"])
        fpts = [points[i] for i in front]
        ax.plot([p.x for p in fpts], [p.y for p in fpts], color=LIGHT["front"], linewidth=1, zorder=2,
                label="Pareto frontier")
        for p in fpts[:12]:
            ax.annotate(_short(p.label, 24), (p.x, p.y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if logx and all(p.x > 0 for p in points):
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())  # dozens of unlabelled minor ticks cost more than the data
        ax.yaxis.set_major_locator(MaxNLocator(6))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
    return _render(chart_id, 3.4, 0.1, draw)


def bar_chart(chart_id: str, labels: Sequence[str], panels: Sequence[tuple[str, Sequence[float | None]]],
              imported: Sequence[bool]) -> Deferred:
    return Deferred(_bar_chart, (chart_id, list(labels), [(a, list(v)) for a, v in panels], list(imported)))


def line_chart(chart_id: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], xlabel: str,
               ylabel: str) -> Deferred:
    return Deferred(_line_chart, (chart_id, [(a, list(x), list(y)) for a, x, y in series], xlabel, ylabel))


def pareto_chart(chart_id: str, points: Sequence[Point], front: Sequence[int], xlabel: str, ylabel: str,
                 logx: bool = False) -> Deferred:
    return Deferred(_pareto_chart, (chart_id, list(points), list(front), xlabel, ylabel, logx))
